/* trap_flags (spec 5.4 steps 2 and 6): the EFLAGS the Host stacks carries the guest's virtual
 * IF (irq_enabled), not the real one; an interrupt gate turns irq_enabled off for the handler,
 * a trap gate leaves it alone; the iret path puts the stacked IF back. */
#define GUEST "trap_flags"
#include "check.h"

static volatile uint32_t stacked_eflags, irq_enabled_inside;

static void invalid_opcode(struct trap_frame *frame)
{
	stacked_eflags = frame->eflags;
	irq_enabled_inside = lguest_data.irq_enabled;
	frame->eip += 2; /* ud2 */
}

/* A fault, not `int n`: 2.6.24 lets the guest's gate be entered only by a real trap, except
 * for the trap gates it installs directly. */
static void check_fault(unsigned int gate, uint32_t irq_flag, uint32_t want_inside)
{
	set_trap_handler(TRAP_UD, invalid_opcode, gate, 1);
	irq_restore(irq_flag);
	__asm__ __volatile__("ud2");
	uint32_t after = lguest_data.irq_enabled;
	irq_disable();
	CHECK((stacked_eflags & X86_EFLAGS_IF) == irq_flag,
	      "gate type %#x, irq_enabled %#x: stacked EFLAGS %#x", gate, irq_flag, stacked_eflags);
	CHECK(irq_enabled_inside == want_inside,
	      "gate type %#x, irq_enabled %#x: %#x inside the handler, want %#x", gate, irq_flag,
	      irq_enabled_inside, want_inside);
	CHECK(after == irq_flag, "gate type %#x: irq_enabled %#x after the iret, want %#x", gate,
	      after, irq_flag);
}

int main(void)
{
	check_fault(IDT_TYPE_TRAP_GATE, X86_EFLAGS_IF, X86_EFLAGS_IF);
	check_fault(IDT_TYPE_INTERRUPT_GATE, X86_EFLAGS_IF, 0);
	check_fault(IDT_TYPE_TRAP_GATE, 0, 0);
	check_fault(IDT_TYPE_INTERRUPT_GATE, 0, 0);
	pass();
	return 0;
}
