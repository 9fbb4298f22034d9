/* set_pmd_1023 (row 43): SET_PMD of index 1023 (the Host's) is ignored, not a kill. */
#define GUEST "set_pmd_1023"
#include "check.h"

int main(void)
{
	hcall(LHCALL_SET_PMD, lguest_data.pgdir, SWITCHER_PDE, 0);
	hcall(LHCALL_SET_PMD, lguest_data.pgdir, 4096, 0);
	pass();
	return 0;
}
