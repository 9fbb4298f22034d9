/* bad_pte_pwt (spec 6): a fault through a PTE with write-through (PWT) set: killed
 * "bad page table entry". */
#define GUEST "bad_pte_pwt"
#include "check.h"

#define VA 0x80000000u
static uint32_t table[1024] __attribute__((aligned(4096)));

int main(void)
{
	install_page_table(VA, table);
	*pte_slot(table, VA) = __pa(boot_stack) | PTE_PRESENT | PTE_RW | PTE_PWT;
	read_u32(VA);
	panic("FAIL " GUEST ": a PWT PTE was used");
}
