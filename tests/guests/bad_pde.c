/* bad_pde (spec 6): a fault through a PDE with a flag outside 0x67 (PSE): killed
 * "bad page directory entry". */
#define GUEST "bad_pde"
#include "check.h"

#define VA 0x80000000u
static uint32_t table[1024] __attribute__((aligned(4096)));

int main(void)
{
	current_pgdir()[VA >> 22] = __pa(table) | PTE_PRESENT | PTE_RW | PTE_PSE;
	hcall(LHCALL_SET_PMD, lguest_data.pgdir, VA >> 22, 0);
	read_u32(VA);
	panic("FAIL " GUEST ": a PSE PDE was used");
}
