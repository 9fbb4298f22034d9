/* noirq_window (spec 5.1 step 3, spec 10 step 6): no interrupt is injected while
 * noirq_start <= EIP < noirq_end.  This guest names its own spin loop as the window (the Host
 * reads the window once, at INIT), arms a 1 ms timer with interrupts on and spins inside the
 * window for far longer: the interrupt must arrive only once the loop is left (EIP at or past
 * window_end), at the latest a moment later.  If the Host was so slow that the timer fired
 * before the loop was even reached, the attempt proves nothing and is repeated. */
#define GUEST "noirq_window"
#include "check.h"

#define ATTEMPTS 5
extern char window_start[], window_end[];
static volatile uint32_t ticks, eip_at_tick, entered_window, entered_at_tick;

static void timer(struct trap_frame *frame)
{
	ticks++;
	eip_at_tick = frame->eip;
	entered_at_tick = entered_window;
}

void rt_pre_init(void)
{
	PHYS_PTR(lguest_data)->noirq_start = (uint32_t)window_start;
	PHYS_PTR(lguest_data)->noirq_end = (uint32_t)window_end;
}

static bool in_window(uint32_t eip)
{
	return eip >= (uint32_t)window_start && eip < (uint32_t)window_end;
}

int main(void)
{
	set_trap_handler(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, timer, IDT_TYPE_INTERRUPT_GATE, 1);
	irq_unmask(TIMER_IRQ);
	irq_enable();
	for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
		uint32_t loops = 400000000;

		ticks = entered_window = 0;
		lguest_set_timer(1000 * 1000);
		__asm__ __volatile__("movl $1, %1\n"
				     ".globl window_start, window_end\n"
				     "window_start:\n\t"
				     "dec %0\n\t"
				     "jnz window_start\n"
				     "window_end:"
				     : "+r"(loops), "=m"(entered_window));
		CHECK(spin_until(&ticks, 100000000), "no timer interrupt after leaving the window");
		CHECK(!in_window(eip_at_tick), "interrupted inside the noirq window at %#x",
		      eip_at_tick);
		if (entered_at_tick) {
			pass();
			return 0;
		}
	}
	panic("FAIL " GUEST ": the timer always fired before the window was reached");
}
