/* trap_bad_stack (spec 5.4): the Host pushes a trap frame on the guest's stack, translating ESP
 * through the guest's page tables first; with ESP in unmapped memory that walk fails: killed
 * "Bad address 0x80000000". */
#define GUEST "trap_bad_stack"
#include "check.h"

static void invalid_opcode(struct trap_frame *frame)
{
	(void)frame;
	panic("FAIL " GUEST ": a trap frame was pushed on an unmapped stack");
}

int main(void)
{
	set_trap_handler(TRAP_UD, invalid_opcode, IDT_TYPE_INTERRUPT_GATE, 1);
	__asm__ __volatile__("movl $0x80000000, %esp\n\t"
			     "ud2");
	return 0;
}
