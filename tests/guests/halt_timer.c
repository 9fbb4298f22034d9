/* halt_timer (row 44): HALT with irq 0 unmasked and the timer armed sleeps until it expires;
 * vector 0x20 is entered (interrupt gate: irq_enabled 0 inside, IF set in the stacked EFLAGS)
 * and HALT returns with irq_enabled = 0x200. */
#define GUEST "halt_timer"
#include "check.h"

static volatile uint32_t ticks, irq_enabled_inside, stacked_eflags;

static void timer(struct trap_frame *frame)
{
	ticks++;
	irq_enabled_inside = lguest_data.irq_enabled;
	stacked_eflags = frame->eflags;
}

int main(void)
{
	set_trap_handler(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, timer, IDT_TYPE_INTERRUPT_GATE, 1);
	irq_unmask(TIMER_IRQ);
	irq_disable(); /* HALT wakes us however the flag stands: it acts as sti; hlt */
	lguest_set_timer(20 * 1000 * 1000);
	lguest_halt();
	CHECK(ticks == 1, "%u timer interrupts after HALT, want 1", ticks);
	CHECK(irq_enabled_inside == 0, "irq_enabled %#x inside an interrupt gate",
	      irq_enabled_inside);
	CHECK(stacked_eflags & X86_EFLAGS_IF, "stacked EFLAGS %#x without IF", stacked_eflags);
	CHECK(lguest_data.irq_enabled == X86_EFLAGS_IF, "irq_enabled %#x after HALT",
	      lguest_data.irq_enabled);
	pass();
	return 0;
}
