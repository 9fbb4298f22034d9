/* trap_stack_beyond_memory (spec 5.4, 6): the stack's page table entry points past guest
 * memory; the Host's first push (EFLAGS, 4 bytes below ESP) is bounds-checked: killed
 * "bad write address 0xf000000c len 4". */
#define GUEST "trap_stack_beyond_memory"
#include "check.h"

#define STACK_VA 0x80000000u
static uint32_t table[1024] __attribute__((aligned(4096)));

static void invalid_opcode(struct trap_frame *frame)
{
	(void)frame;
	panic("FAIL " GUEST ": a trap frame was pushed beyond guest memory");
}

int main(void)
{
	set_trap_handler(TRAP_UD, invalid_opcode, IDT_TYPE_INTERRUPT_GATE, 1);
	install_page_table(STACK_VA, table);
	*pte_slot(table, STACK_VA) = 0xF0000000 | PTE_PRESENT | PTE_RW;
	__asm__ __volatile__("movl $0x80000010, %esp\n\t"
			     "ud2");
	return 0;
}
