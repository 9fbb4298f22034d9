/* irq_blocked (spec 5.1 step 2): a pending irq whose bit is set in blocked_interrupts is not
 * delivered, even with interrupts enabled and many exits; clearing the bit lets it through at
 * the next exit. */
#define GUEST "irq_blocked"
#include "check.h"

static volatile uint32_t ticks;

static void timer(struct trap_frame *frame)
{
	(void)frame;
	ticks++;
}

int main(void)
{
	set_trap_handler(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, timer, IDT_TYPE_INTERRUPT_GATE, 1);
	irq_mask(TIMER_IRQ);
	irq_enable();
	lguest_set_timer(1000 * 1000);
	/* Well past 1 ms, exiting to the Host all along. */
	for (int i = 0; i < 200; i++) {
		spin_iterations(200000);
		hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	}
	CHECK(ticks == 0, "a masked timer interrupt was delivered");
	irq_unmask(TIMER_IRQ);
	hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	CHECK(spin_until(&ticks, 100000000), "the unmasked pending timer interrupt never came");
	pass();
	return 0;
}
