/* user_syscall (spec 5.3, 5.4): user mode through SET_STACK and a DPL-3 trap gate at 0x80.
 * Code at privilege level 3 makes `int $0x80`: the Host switches to the SET_STACK stack,
 * pushes the user SS and ESP, and enters the handler; the handler's iret goes back to user
 * mode; a second syscall ends the user code. */
#define GUEST "user_syscall"
#include "check.h"

static volatile uint32_t calls, irq_flag, esp_before_int;
static volatile bool frame_on_trap_stack;

static void syscall(struct trap_frame *frame)
{
	calls++;
	irq_flag = lguest_data.irq_enabled;
	frame_on_trap_stack = (uint32_t)frame >= (uint32_t)trap_stack &&
			      (uint32_t)frame < (uint32_t)trap_stack + sizeof(trap_stack);
	user_trap = *frame;
	if (frame->eax == 0)
		user_return(frame->ebx);
	if (frame->user_esp != esp_before_int)
		panic("FAIL " GUEST ": stacked ESP %#x, the user's was %#x", frame->user_esp,
		      esp_before_int);
}

static void user_code(void)
{
	__asm__ __volatile__("movl %%esp, %0\n\t"
			     "int $0x80"
			     : "=m"(esp_before_int)
			     : "a"(1)
			     : "memory");
	__asm__ __volatile__("int $0x80" : : "a"(0), "b"(42) : "memory");
	__builtin_trap(); /* the trap above must end the user code */
}

int main(void)
{
	prepare_user_mode();
	set_trap_handler(SYSCALL_VECTOR, syscall, IDT_TYPE_TRAP_GATE, 3);
	irq_enable();
	uint32_t result = enter_user(user_code);
	CHECK(result == 42, "run_user returned %u, want 42", result);
	CHECK(calls == 2, "%u syscalls, want 2", calls);
	CHECK(trap_from_user(&user_trap), "the frame says the trap came from privilege level 1");
	CHECK(user_trap.cs == USER_CS, "stacked CS %#x, want %#x", user_trap.cs, USER_CS);
	CHECK(user_trap.user_ss == USER_DS, "stacked SS %#x, want %#x", user_trap.user_ss, USER_DS);
	CHECK(frame_on_trap_stack, "the frame is not on the SET_STACK stack");
	CHECK(irq_flag == X86_EFLAGS_IF, "a trap gate changed irq_enabled to %#x", irq_flag);
	pass();
	return 0;
}
