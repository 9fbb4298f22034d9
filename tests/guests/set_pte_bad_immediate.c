/* set_pte_bad_immediate (spec 6): SET_PTE of a PTE with the accessed bit and PSE is checked at
 * once, without any access: killed "bad page table entry". */
#define GUEST "set_pte_bad_immediate"
#include "check.h"

#define VA 0x80000000u
static uint32_t table[1024] __attribute__((aligned(4096)));
static uint8_t page[PAGE_SIZE] __attribute__((aligned(4096)));

int main(void)
{
	install_page_table(VA, table);
	set_pte(table, VA, __pa(page) | PTE_PRESENT | PTE_RW | PTE_ACCESSED | PTE_PSE);
	panic("FAIL " GUEST ": SET_PTE accepted a PSE PTE with A set");
}
