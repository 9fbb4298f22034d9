/* switcher_set_pte (spec 6): SET_PTE for an address in the Host's top 4 MB: killed
 * "attempt to access switcher pages". */
#include "lguest.h"

int main(void)
{
	hcall(LHCALL_SET_PTE, lguest_data.pgdir, SWITCHER_ADDR, __pa(boot_stack) | PTE_PRESENT);
	panic("FAIL switcher_set_pte: SET_PTE on the switcher was accepted");
}
