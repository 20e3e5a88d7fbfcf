/* boxfort.c - linked into the criterion test programs by `make tsan` only.
 *
 * Criterion's BoxFort maps its inheritable arena at a random 16 MiB step of
 * [0x2000'0000'0000, 0x6000'0000'0000) and gives up after 10 tries ("Could
 * not initialize inheritable arena", Snaipe/Criterion#274). Under TSan all
 * of that range but [0x5500'0000'0000, 0x5680'0000'0000) is TSan's shadow,
 * meta data or protected gaps, so nearly every start fails. BoxFort draws
 * its steps with rand_r(): this rand_r gives libcriterion's calls only steps
 * in [0x5660'0000'0000, 0x5680'0000'0000), which is application memory for
 * TSan and above where the kernel puts PIE programs; every other caller
 * gets glibc's. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

/* BoxFort's step r maps to 0x2000'0000'0000 + r * 16 MiB. */
#define STEP_LO 0x366000u /* 0x5660'0000'0000 */
#define STEP_N 0x2000u    /* up to 0x5680'0000'0000 */

static int s_from_criterion(const void *caller)
{
    Dl_info info;
    return dladdr(caller, &info) && info.dli_fname &&
           strstr(info.dli_fname, "libcriterion") != NULL;
}

int rand_r(unsigned int *seed)
{
    static int (*real)(unsigned int *);
    if (!real)
        real = (int (*)(unsigned int *))dlsym(RTLD_NEXT, "rand_r");
    int r = real(seed);
    if (s_from_criterion(__builtin_return_address(0)))
        r = (int)(STEP_LO + (unsigned)r % STEP_N);
    return r;
}
