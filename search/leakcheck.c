/* LeakSanitizer in MPI programs (ls_search.h, docs/search.md "Leak checking").
 *
 * Open MPI dlopens its plugins (mca_*.so) and dlcloses the ones it does not
 * select during MPI_Init and the rest in MPI_Finalize. What those plugins keep
 * until exit is reported by the exit-time leak check with "<unknown module>"
 * frames, which no suppression can name. Two measures keep the check useful for
 * our own code:
 *  - the check runs before MPI_Finalize (ls_search_leak_check), when the
 *    selected plugins' state is still reachable and their modules still loaded;
 *  - allocations are unwound with the slow (DWARF) unwinder, so a stack that
 *    starts in an already unloaded plugin still shows the libopen-pal.so /
 *    libmpi.so frames that loaded it, which tests/lsan.supp suppresses. */
#include "ls_search.h"

#if defined(__SANITIZE_ADDRESS__)
#define LS_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LS_HAVE_LSAN 1
#endif
#endif

#ifdef LS_HAVE_LSAN
#include <sanitizer/lsan_interface.h>

/* Defaults of every binary that links this file; LSAN_OPTIONS overrides them flag by flag. */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "fast_unwind_on_malloc=0"; }

/* Reports leaks (the process then exits with a failing status, as with the exit-time check);
 * later calls and the exit-time check do nothing. */
void ls_search_leak_check(void) { __lsan_do_leak_check(); }
#else
void ls_search_leak_check(void) {}
#endif
