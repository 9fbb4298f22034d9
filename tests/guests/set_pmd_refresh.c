/* set_pmd_refresh (spec 6): SET_PMD makes the Host forget one page-directory entry: a PDE
 * pointed at another page table and announced with SET_PMD shows that table's mapping. */
#define GUEST "set_pmd_refresh"
#include "check.h"

#define VA 0x80000000u
static uint32_t table_a[1024] __attribute__((aligned(4096)));
static uint32_t table_b[1024] __attribute__((aligned(4096)));
static uint32_t page_a[1024] __attribute__((aligned(4096)));
static uint32_t page_b[1024] __attribute__((aligned(4096)));

int main(void)
{
	page_a[0] = 0xAAAAAAAA;
	page_b[0] = 0xBBBBBBBB;
	*pte_slot(table_a, VA) = __pa(page_a) | PTE_PRESENT | PTE_RW;
	*pte_slot(table_b, VA) = __pa(page_b) | PTE_PRESENT | PTE_RW;
	install_page_table(VA, table_a);
	CHECK(read_u32(VA) == 0xAAAAAAAA, "through table a: read %#x", read_u32(VA));
	install_page_table(VA, table_b);
	CHECK(read_u32(VA) == 0xBBBBBBBB, "after SET_PMD to table b: read %#x", read_u32(VA));
	pass();
	return 0;
}
