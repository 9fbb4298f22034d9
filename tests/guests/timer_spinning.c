/* timer_spinning (spec 5.1, SET_CLOCKEVENT): the timer interrupt reaches a guest that spins
 * without exits, with interrupts enabled: the Host must take control back to inject it. */
#define GUEST "timer_spinning"
#include "check.h"

static volatile uint32_t ticks, eip_at_tick;

static void timer(struct trap_frame *frame)
{
	ticks++;
	eip_at_tick = frame->eip;
}

int main(void)
{
	set_trap_handler(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, timer, IDT_TYPE_INTERRUPT_GATE, 1);
	irq_unmask(TIMER_IRQ);
	irq_enable();
	lguest_set_timer(5 * 1000 * 1000);
	/* No hypercall, no store in the loop: only the Host can end it. */
	CHECK(spin_until(&ticks, 0xFFFFFFFF), "no timer interrupt while spinning");
	CHECK(eip_at_tick >= (uint32_t)&main, "interrupted at %#x, outside the guest", eip_at_tick);
	CHECK(lguest_data.irq_enabled == X86_EFLAGS_IF, "irq_enabled %#x after the iret",
	      lguest_data.irq_enabled);
	pass();
	return 0;
}
