/* user_hypercall_gp (spec 3): a hypercall from user mode is a #GP with error code 0xFA (the
 * Host's 0x1f gate has DPL 1), reflected to the guest rather than run. */
#define GUEST "user_hypercall_gp"
#include "check.h"

static uint8_t kernel_stack[PAGE_SIZE] __attribute__((aligned(4096)));
static uint8_t user_stack[PAGE_SIZE] __attribute__((aligned(4096)));

static void general_protection(struct trap_frame *frame)
{
	if (!trap_from_user(frame))
		panic("FAIL " GUEST ": #GP at privilege level 1, eip %#x err %#x", frame->eip,
		      frame->error_code);
	user_return(frame->error_code);
}

static void user_code(void)
{
	/* CRASH: if the Host ran it, the guest would die with this text. */
	__asm__ __volatile__("int $0x1f" : : "a"(LHCALL_CRASH), "d"(__pa("FAIL user hypercall ran"))
			     : "memory");
	for (;;)
		;
}

int main(void)
{
	rt_load_user_gdt();
	hcall(LHCALL_SET_STACK, GUEST_DS, (uint32_t)kernel_stack + sizeof(kernel_stack), 1);
	set_trap_handler(TRAP_GP, general_protection, IDT_TYPE_INTERRUPT_GATE, 1);
	uint32_t error = run_user(user_code, (uint32_t)user_stack + sizeof(user_stack));
	CHECK(error == LGUEST_TRAP_ENTRY * 8 + 2, "#GP error code %#x, want %#x", error,
	      LGUEST_TRAP_ENTRY * 8 + 2);
	pass();
	return 0;
}
