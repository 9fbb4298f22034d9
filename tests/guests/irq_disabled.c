/* irq_disabled (spec 5.1 step 5): with irq_enabled 0 a pending irq waits, however many exits;
 * setting irq_enabled lets it through at the next exit. */
#define GUEST "irq_disabled"
#include "check.h"

int main(void)
{
	count_timer_interrupts();
	irq_unmask(TIMER_IRQ);
	irq_disable();
	lguest_set_timer(1000 * 1000);
	run_with_exits();
	CHECK(timer_ticks == 0, "a timer interrupt was delivered with interrupts disabled");
	irq_enable();
	hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	CHECK(spin_until(&timer_ticks, 100000000),
	      "the pending timer interrupt never came once enabled");
	pass();
	return 0;
}
