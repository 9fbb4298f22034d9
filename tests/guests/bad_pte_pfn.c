/* bad_pte_pfn (row 42): a fault through a PTE whose page is at or above pfnlimit: killed
 * "bad page table entry". */
#define GUEST "bad_pte_pfn"
#include "check.h"

#define VA 0x80000000u
static uint32_t table[1024] __attribute__((aligned(4096)));

int main(void)
{
	install_page_table(VA, table);
	*pte_slot(table, VA) = 0xFFFFF000 | PTE_PRESENT | PTE_RW;
	read_u32(VA);
	panic("FAIL " GUEST ": a PTE beyond memory was used");
}
