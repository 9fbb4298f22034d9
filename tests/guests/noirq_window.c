/* noirq_window (spec 5.1 step 3, spec 10 step 6): no interrupt is injected while
 * noirq_start <= EIP < noirq_end.  This guest names its own spin loop as the window (the
 * Host reads the window once, at INIT), arms the timer with interrupts on, and spins inside
 * it well past expiry: the interrupt must arrive only after the loop is left. */
#define GUEST "noirq_window"
#include "check.h"

extern char window_start[], window_end[];
static volatile uint32_t ticks, eip_at_tick;

static void timer(struct trap_frame *frame)
{
	ticks++;
	eip_at_tick = frame->eip;
}

void rt_pre_init(void)
{
	PHYS_PTR(lguest_data)->noirq_start = (uint32_t)window_start;
	PHYS_PTR(lguest_data)->noirq_end = (uint32_t)window_end;
}

int main(void)
{
	uint32_t loops = 400000000, seen_inside;

	set_trap_handler(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, timer, IDT_TYPE_INTERRUPT_GATE, 1);
	irq_unmask(TIMER_IRQ);
	irq_enable();
	lguest_set_timer(1000 * 1000);
	__asm__ __volatile__(".globl window_start, window_end\n"
			     "window_start:\n\t"
			     "dec %0\n\t"
			     "jnz window_start\n"
			     "window_end:\n\t"
			     "movl %2, %1"
			     : "+r"(loops), "=r"(seen_inside)
			     : "m"(ticks));
	CHECK(seen_inside == 0, "interrupted inside the noirq window (at %#x)", eip_at_tick);
	CHECK(spin_until(&ticks, 100000000), "no timer interrupt after leaving the window");
	CHECK(eip_at_tick < (uint32_t)window_start || eip_at_tick >= (uint32_t)window_end,
	      "interrupt taken at %#x inside the window", eip_at_tick);
	pass();
	return 0;
}
