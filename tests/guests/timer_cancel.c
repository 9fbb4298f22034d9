/* timer_cancel (spec 3 SET_CLOCKEVENT): 0 cancels an armed timer: no interrupt comes, however
 * long the guest runs with the timer unmasked and interrupts on.  "Long" is measured with the
 * TSC, calibrated first against the timer itself (20 ms asleep in HALT). */
#define GUEST "timer_cancel"
#include "check.h"

#define PERIOD_NS (20 * 1000 * 1000)
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

int main(void)
{
	count_timer_interrupts();
	irq_unmask(TIMER_IRQ);

	/* Interrupts stay off until HALT, which takes the tick regardless and returns with them
	 * on: so the tick cannot come before the HALT. */
	uint64_t start = rdtsc();
	lguest_set_timer(PERIOD_NS);
	lguest_halt();
	uint64_t period = rdtsc() - start;
	CHECK(timer_ticks == 1, "%u timer interrupts calibrating, want 1", timer_ticks);
	CHECK(period > 0, "the TSC does not advance");
	CHECK(lguest_data.irq_enabled == X86_EFLAGS_IF, "interrupts off after HALT");

	lguest_set_timer(PERIOD_NS);
	lguest_set_timer(0);
	for (start = rdtsc(); rdtsc() - start < 3 * period;) {
		spin_iterations(10000);
		hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	}
	CHECK(timer_ticks == 1, "a timer interrupt came after the timer was cancelled");
	pass();
	return 0;
}
