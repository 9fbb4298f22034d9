/* set_pte_refresh (spec 6): SET_PTE drops the old translation: a mapping changed in memory and
 * announced with SET_PTE (no TLB flush) shows the new page at once; a PTE cleared that way
 * faults. */
#define GUEST "set_pte_refresh"
#include "check.h"

#define VA 0x80000000u
static uint32_t table[1024] __attribute__((aligned(4096)));
static uint32_t page_a[1024] __attribute__((aligned(4096)));
static uint32_t page_b[1024] __attribute__((aligned(4096)));
static volatile uint32_t faults;

static void page_fault(struct trap_frame *frame)
{
	faults++;
	set_pte(table, lguest_data.cr2, __pa(page_a) | PTE_PRESENT | PTE_RW);
	(void)frame;
}

int main(void)
{
	page_a[0] = 0xAAAAAAAA;
	page_b[0] = 0xBBBBBBBB;
	set_trap_handler(TRAP_PF, page_fault, IDT_TYPE_INTERRUPT_GATE, 1);
	install_page_table(VA, table);
	set_pte(table, VA, __pa(page_a) | PTE_PRESENT | PTE_RW);
	CHECK(read_u32(VA) == 0xAAAAAAAA, "first mapping: read %#x", read_u32(VA));
	set_pte(table, VA, __pa(page_b) | PTE_PRESENT | PTE_RW);
	CHECK(read_u32(VA) == 0xBBBBBBBB, "after SET_PTE to page b: read %#x", read_u32(VA));
	set_pte(table, VA, 0);
	CHECK(read_u32(VA) == 0xAAAAAAAA && faults == 1,
	      "after SET_PTE to nothing: %u faults, read %#x", faults, read_u32(VA));
	pass();
	return 0;
}
