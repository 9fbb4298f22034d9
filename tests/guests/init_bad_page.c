/* init_bad_page (row 28): LGUEST_INIT with lguest_data at pfnlimit * 4096 - 100, so its 1136
 * bytes run past the last page: killed "bad guest page 00000000". */
#define GUEST "init_bad_page"
#include "check.h"

void rt_pre_init(void)
{
	hcall(LHCALL_LGUEST_INIT, phys_find_pfnlimit() * PAGE_SIZE - 100, 0, 0);
}

int main(void)
{
	panic("FAIL " GUEST ": survived INIT past the end of memory");
}
