/* pte_accessed_dirty (spec 6): the Host sets the accessed bit in the guest's PTE on the first
 * access and the dirty bit on the first write, as the hardware would. */
#define GUEST "pte_accessed_dirty"
#include "check.h"

#define VA 0x80000000u
static uint32_t table[1024] __attribute__((aligned(4096)));
static uint8_t page[PAGE_SIZE] __attribute__((aligned(4096)));

int main(void)
{
	volatile uint32_t *pte = pte_slot(table, VA);

	install_page_table(VA, table);
	set_pte(table, VA, __pa(page) | PTE_PRESENT | PTE_RW);
	CHECK(!(*pte & (PTE_ACCESSED | PTE_DIRTY)), "PTE %#x has A or D before any access", *pte);
	read_u32(VA);
	CHECK(*pte & PTE_ACCESSED, "PTE %#x lacks A after a read", *pte);
	CHECK(!(*pte & PTE_DIRTY), "PTE %#x has D after only a read", *pte);
	write_u32(VA, 7);
	CHECK(*pte & PTE_DIRTY, "PTE %#x lacks D after a write", *pte);
	pass();
	return 0;
}
