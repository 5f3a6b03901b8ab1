/* ls_write_file_atomic: a regular file is replaced whole (temp + rename, no temp left behind);
 * a symlink to a regular file keeps being a link; a pipe, or a link to one (as /dev/stdout is),
 * is written through and stays what it was; a directory is refused with its name. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ls_test.h"
#include "ls_util.h"

static char dir[256];

static void make_dir(void) { snprintf(dir, sizeof dir, "%s", ls_test_tmpdir()); }

/* Removes dir and its (flat) contents. */
static void remove_dir(void) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[512];
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
  closedir(d);
  rmdir(dir);
}

static int entries(void) {
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static char *slurp(const char *path) {
  char *buf = NULL;
  size_t len = 0;
  ls_err err;
  ck_assert_int_eq(ls_read_file(path, &buf, &len, &err), LS_OK);
  return buf;
}

START_TEST(regular_file_replaced_whole) {
  make_dir();
  char p[512];
  snprintf(p, sizeof p, "%s/out.json", dir);
  ls_err err;
  ck_assert_int_eq(ls_write_file_atomic(p, "first version, longer\n", 22, &err), LS_OK);
  ck_assert_int_eq(ls_write_file_atomic(p, "second\n", 7, &err), LS_OK);
  char *s = slurp(p);
  ck_assert_str_eq(s, "second\n");
  free(s);
  ck_assert_int_eq(entries(), 1); /* no temp file left */
  remove_dir();
}
END_TEST

START_TEST(link_to_regular_file_stays_a_link) {
  make_dir();
  char target[512], link[512];
  snprintf(target, sizeof target, "%s/real.json", dir);
  snprintf(link, sizeof link, "%s/link.json", dir);
  ls_err err;
  ck_assert_int_eq(ls_write_file_atomic(target, "old\n", 4, &err), LS_OK);
  ck_assert_int_eq(symlink("real.json", link), 0);
  ck_assert_int_eq(ls_write_file_atomic(link, "new\n", 4, &err), LS_OK);
  struct stat st;
  ck_assert_int_eq(lstat(link, &st), 0);
  ck_assert(S_ISLNK(st.st_mode));
  char *s = slurp(target);
  ck_assert_str_eq(s, "new\n");
  free(s);
  ck_assert_int_eq(entries(), 2);
  remove_dir();
}
END_TEST

/* Writes `text` to `path` (a FIFO, or a link to it) while a child reads the FIFO, and checks
 * that the child read exactly that. */
static void write_to_pipe(const char *fifo, const char *path, const char *text) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) { /* reader: FIFO -> pipe back to the parent */
    close(fds[0]);
    int fd = open(fifo, O_RDONLY);
    char buf[256];
    ssize_t n;
    while (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0)
      if (write(fds[1], buf, (size_t)n) != n) _exit(2);
    _exit(fd >= 0 ? 0 : 1);
  }
  close(fds[1]);
  ls_err err;
  int rc = ls_write_file_atomic(path, text, strlen(text), &err);
  if (rc != LS_OK) { /* unblock the reader before failing */
    int fd = open(fifo, O_WRONLY | O_NONBLOCK);
    if (fd >= 0) close(fd);
    kill(pid, SIGKILL);
  }
  ck_assert_msg(rc == LS_OK, "%s", err.msg);
  struct stat st;
  if (lstat(fifo, &st) != 0 || !S_ISFIFO(st.st_mode)) { /* renamed over: the reader waits forever */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("%s was replaced instead of written through", path);
  }
  char got[256] = "";
  size_t n = 0;
  ssize_t r;
  while ((r = read(fds[0], got + n, sizeof got - 1 - n)) > 0) n += (size_t)r;
  got[n] = 0;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ck_assert_str_eq(got, text);
}

START_TEST(pipe_written_through_not_replaced) {
  make_dir();
  char fifo[512], link[512];
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  snprintf(link, sizeof link, "%s/stdout", dir);
  ck_assert_int_eq(mkfifo(fifo, 0600), 0);
  ck_assert_int_eq(symlink(fifo, link), 0); /* like /dev/stdout -> /proc/self/fd/1 */
  write_to_pipe(fifo, fifo, "through the fifo\n");
  write_to_pipe(fifo, link, "through the link\n");
  struct stat st;
  ck_assert_int_eq(lstat(fifo, &st), 0);
  ck_assert(S_ISFIFO(st.st_mode));
  ck_assert_int_eq(lstat(link, &st), 0);
  ck_assert(S_ISLNK(st.st_mode));
  ck_assert_int_eq(entries(), 2); /* no temp file, nothing renamed */
  remove_dir();
}
END_TEST

START_TEST(directory_refused_by_name) {
  make_dir();
  ls_err err;
  ck_assert_int_ne(ls_write_file_atomic(dir, "x", 1, &err), LS_OK);
  ck_assert_ptr_nonnull(strstr(err.msg, dir));
  ck_assert_int_eq(entries(), 0);
  remove_dir();
}
END_TEST

int main(void) {
  Suite *s = suite_create("atomic_write");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, regular_file_replaced_whole);
  tcase_add_test(tc, link_to_regular_file_stays_a_link);
  tcase_add_test(tc, pipe_written_through_not_replaced);
  tcase_add_test(tc, directory_refused_by_name);
  suite_add_tcase(s, tc);
  return ls_test_run(s);
}
