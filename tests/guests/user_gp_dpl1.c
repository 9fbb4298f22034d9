/* user_gp_dpl1 (spec 5.3): `int $0x80` from user mode through a DPL-1 gate is a #GP with error
 * code 0x80 * 8 + 2, reflected to the guest's #GP handler. */
#define GUEST "user_gp_dpl1"
#include "check.h"

static uint8_t kernel_stack[PAGE_SIZE] __attribute__((aligned(4096)));
static uint8_t user_stack[PAGE_SIZE] __attribute__((aligned(4096)));
static volatile uint32_t syscalls;

static void syscall(struct trap_frame *frame)
{
	(void)frame;
	syscalls++;
}

static void general_protection(struct trap_frame *frame)
{
	if (!trap_from_user(frame))
		panic("FAIL " GUEST ": #GP at privilege level 1, eip %#x err %#x", frame->eip,
		      frame->error_code);
	user_return(frame->error_code);
}

static void user_code(void)
{
	__asm__ __volatile__("int $0x80" : : "a"(1) : "memory");
	for (;;)
		;
}

int main(void)
{
	rt_load_user_gdt();
	hcall(LHCALL_SET_STACK, GUEST_DS, (uint32_t)kernel_stack + sizeof(kernel_stack), 1);
	set_trap_handler(SYSCALL_VECTOR, syscall, IDT_TYPE_TRAP_GATE, 1);
	set_trap_handler(TRAP_GP, general_protection, IDT_TYPE_INTERRUPT_GATE, 1);
	uint32_t error = run_user(user_code, (uint32_t)user_stack + sizeof(user_stack));
	CHECK(syscalls == 0, "the DPL-1 gate was entered from user mode");
	CHECK(error == SYSCALL_VECTOR * 8 + 2, "#GP error code %#x, want %#x", error,
	      SYSCALL_VECTOR * 8 + 2);
	pass();
	return 0;
}
