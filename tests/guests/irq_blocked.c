/* irq_blocked (spec 5.1 step 2): a pending irq whose bit is set in blocked_interrupts is not
 * delivered, even with interrupts enabled and many exits; clearing the bit lets it through at
 * the next exit. */
#define GUEST "irq_blocked"
#include "check.h"

int main(void)
{
	count_timer_interrupts();
	irq_mask(TIMER_IRQ);
	irq_enable();
	lguest_set_timer(1000 * 1000);
	run_with_exits();
	CHECK(timer_ticks == 0, "a masked timer interrupt was delivered");
	irq_unmask(TIMER_IRQ);
	hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	CHECK(spin_until(&timer_ticks, 100000000), "the unmasked pending timer interrupt never came");
	pass();
	return 0;
}
