/* bad_pde_pfn (spec 6): a fault through a PDE whose page table lies at or above pfnlimit:
 * killed "bad page directory entry". */
#define GUEST "bad_pde_pfn"
#include "check.h"

#define VA 0x80000000u

int main(void)
{
	current_pgdir()[VA >> 22] = 0xFFFFF000 | PTE_PRESENT | PTE_RW;
	hcall(LHCALL_SET_PMD, lguest_data.pgdir, VA >> 22, 0);
	read_u32(VA);
	panic("FAIL " GUEST ": a page table beyond memory was used");
}
