/* user_timer (spec 5.1, 5.4): the timer interrupts code spinning in user mode.  The Host
 * switches to the SET_STACK stack and pushes the user SS:ESP; the first user-mode tick's
 * handler returns (iret back to privilege level 3, interrupts on again), the second ends the
 * user code.  (A tick that comes before user mode is reached just re-arms the timer.) */
#define GUEST "user_timer"
#include "check.h"

static volatile uint32_t user_ticks, good_frames, on_trap_stack;

static void timer(struct trap_frame *frame)
{
	if (trap_from_user(frame)) {
		user_ticks++;
		good_frames += frame->cs == USER_CS && frame->user_ss == USER_DS;
		on_trap_stack += (uint32_t)frame >= (uint32_t)trap_stack &&
				 (uint32_t)frame < (uint32_t)trap_stack + sizeof(trap_stack);
		if (user_ticks == 2)
			user_return(user_ticks);
	}
	lguest_set_timer(1000 * 1000);
}

static void user_spin(void)
{
	for (;;)
		__asm__ __volatile__("");
}

int main(void)
{
	prepare_user_mode();
	set_trap_handler(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, timer, IDT_TYPE_INTERRUPT_GATE, 1);
	irq_unmask(TIMER_IRQ);
	irq_enable();
	lguest_set_timer(1000 * 1000);
	uint32_t result = enter_user(user_spin);
	CHECK(result == 2, "user code ended after %u ticks, want 2", result);
	CHECK(good_frames == 2, "%u of 2 timer frames had the user CS and SS", good_frames);
	CHECK(on_trap_stack == 2, "%u of 2 timer frames were on the SET_STACK stack", on_trap_stack);
	pass();
	return 0;
}
