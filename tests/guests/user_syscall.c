/* user_syscall (spec 5.3, 5.4): user mode through SET_STACK and a DPL-3 trap gate at 0x80.
 * Code at privilege level 3 makes `int $0x80`: the Host switches to the SET_STACK stack,
 * pushes the user SS and ESP, and enters the handler; the handler's iret goes back to user
 * mode; a second syscall ends the user code. */
#define GUEST "user_syscall"
#include "check.h"

static uint8_t kernel_stack[2 * PAGE_SIZE] __attribute__((aligned(4096)));
static uint8_t user_stack[PAGE_SIZE] __attribute__((aligned(4096)));
static volatile uint32_t calls, from_user, user_ss, user_cs, frame_on_stack, irq_flag;

static void syscall(struct trap_frame *frame)
{
	calls++;
	from_user = trap_from_user(frame);
	user_ss = frame->user_ss;
	user_cs = frame->cs;
	frame_on_stack = (uint32_t)frame >= (uint32_t)kernel_stack &&
			 (uint32_t)frame < (uint32_t)kernel_stack + sizeof(kernel_stack);
	irq_flag = lguest_data.irq_enabled;
	if (frame->eax == 0)
		user_return(frame->ebx);
}

static void user_code(void)
{
	__asm__ __volatile__("int $0x80" : : "a"(1) : "memory");
	__asm__ __volatile__("int $0x80" : : "a"(0), "b"(42) : "memory");
	for (;;)
		;
}

int main(void)
{
	rt_load_user_gdt();
	hcall(LHCALL_SET_STACK, GUEST_DS, (uint32_t)kernel_stack + sizeof(kernel_stack), 2);
	set_trap_handler(SYSCALL_VECTOR, syscall, IDT_TYPE_TRAP_GATE, 3);
	irq_enable();
	uint32_t result = run_user(user_code, (uint32_t)user_stack + sizeof(user_stack));
	CHECK(result == 42, "run_user returned %u, want 42", result);
	CHECK(calls == 2, "%u syscalls, want 2", calls);
	CHECK(from_user, "the frame says the trap came from privilege level 1");
	CHECK(user_cs == USER_CS, "stacked CS %#x, want %#x", user_cs, USER_CS);
	CHECK(user_ss == USER_DS, "stacked SS %#x, want %#x", user_ss, USER_DS);
	CHECK(frame_on_stack, "the frame is not on the SET_STACK stack");
	CHECK(irq_flag == X86_EFLAGS_IF, "a trap gate changed irq_enabled to %#x", irq_flag);
	pass();
	return 0;
}
