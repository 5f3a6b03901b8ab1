/* Keeps the helper library non-empty. */
typedef int ls_testhelpers_empty;
