/* time_refresh (spec 4, 5.1 step 7): lguest_data.time is the wall clock, written at INIT and
 * again when an interrupt is delivered: after a 20 ms timer it has moved on by at least that. */
#define GUEST "time_refresh"
#include "check.h"

static int64_t nanoseconds(void)
{
	return (int64_t)lguest_data.time.tv_sec * 1000000000 + lguest_data.time.tv_nsec;
}

int main(void)
{
	int64_t at_init = nanoseconds();

	count_timer_interrupts();
	irq_unmask(TIMER_IRQ);
	lguest_set_timer(20 * 1000 * 1000);
	lguest_halt();
	CHECK(timer_ticks == 1, "%u timer interrupts, want 1", timer_ticks);
	int64_t elapsed_us = (nanoseconds() - at_init) / 1000;
	CHECK(elapsed_us >= 20000, "time moved %d us across a 20 ms timer", (int)elapsed_us);
	CHECK(elapsed_us < 60 * 1000 * 1000, "time jumped %d us", (int)elapsed_us);
	pass();
	return 0;
}
