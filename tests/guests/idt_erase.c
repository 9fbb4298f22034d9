/* idt_erase (spec 5.3): LOAD_IDT_ENTRY with the present bit clear erases the entry: the next
 * #UD finds no handler and kills "unhandled trap 6 at <eip> (0x0)". */
#define GUEST "idt_erase"
#include "check.h"

static volatile uint32_t traps;

static void invalid_opcode(struct trap_frame *frame)
{
	traps++;
	frame->eip += 2;
}

int main(void)
{
	set_trap_handler(TRAP_UD, invalid_opcode, IDT_TYPE_TRAP_GATE, 1);
	__asm__ __volatile__("ud2");
	CHECK(traps == 1, "%u #UD traps through the installed entry, want 1", traps);
	clear_trap_handler(TRAP_UD);
	__asm__ __volatile__("ud2");
	panic("FAIL " GUEST ": #UD after erasing its entry did not kill");
}
