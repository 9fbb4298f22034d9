/* new_pgtable (spec 6): NEW_PGTABLE switches to another page directory (the kernel mapping
 * copied, one test address mapped differently) and back; each shows its own mapping. */
#define GUEST "new_pgtable"
#include "check.h"

#define VA 0x80000000u
static uint32_t other_dir[1024] __attribute__((aligned(4096)));
static uint32_t table_a[1024] __attribute__((aligned(4096)));
static uint32_t table_b[1024] __attribute__((aligned(4096)));
static uint32_t page_a[1024] __attribute__((aligned(4096)));
static uint32_t page_b[1024] __attribute__((aligned(4096)));

int main(void)
{
	uint32_t original = lguest_data.pgdir;

	page_a[0] = 0xAAAAAAAA;
	page_b[0] = 0xBBBBBBBB;
	install_page_table(VA, table_a);
	set_pte(table_a, VA, __pa(page_a) | PTE_PRESENT | PTE_RW);
	memcpy(other_dir, current_pgdir(), SWITCHER_PDE * sizeof(uint32_t));
	other_dir[VA >> 22] = __pa(table_b) | PTE_PRESENT | PTE_RW | PTE_USER;
	table_b[0] = __pa(page_b) | PTE_PRESENT | PTE_RW;

	CHECK(read_u32(VA) == 0xAAAAAAAA, "original table: read %#x", read_u32(VA));
	hcall(LHCALL_NEW_PGTABLE, __pa(other_dir), 0, 0);
	CHECK(read_u32(VA) == 0xBBBBBBBB, "new table: read %#x", read_u32(VA));
	hcall(LHCALL_NEW_PGTABLE, original, 0, 0);
	CHECK(read_u32(VA) == 0xAAAAAAAA, "back to the original: read %#x", read_u32(VA));
	pass();
	return 0;
}
