/* irq_disabled (spec 5.1 step 5): with irq_enabled 0 a pending irq waits, however many exits;
 * setting irq_enabled lets it through at the next exit. */
#define GUEST "irq_disabled"
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
	irq_unmask(TIMER_IRQ);
	irq_disable();
	lguest_set_timer(1000 * 1000);
	for (int i = 0; i < 200; i++) {
		spin_iterations(200000);
		hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	}
	CHECK(ticks == 0, "a timer interrupt was delivered with interrupts disabled");
	irq_enable();
	hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	CHECK(spin_until(&ticks, 100000000), "the pending timer interrupt never came once enabled");
	pass();
	return 0;
}
