/* user_hypercall_gp (spec 3): a hypercall from user mode is a #GP with error code 0xFA (the
 * Host's 0x1f gate has DPL 1), reflected to the guest rather than run. */
#define GUEST "user_hypercall_gp"
#include "check.h"

static void user_code(void)
{
	/* CRASH: if the Host ran it, the guest would die with this text. */
	__asm__ __volatile__("int $0x1f"
			     :
			     : "a"(LHCALL_CRASH), "d"(__pa("FAIL user hypercall ran"))
			     : "memory");
	__builtin_trap(); /* the trap above must end the user code */
}

int main(void)
{
	prepare_user_mode();
	set_trap_handler(TRAP_GP, user_trap_return, IDT_TYPE_INTERRUPT_GATE, 1);
	uint32_t error = enter_user(user_code);
	CHECK(trap_from_user(&user_trap), "#GP at privilege level 1, eip %#x", user_trap.eip);
	CHECK(error == LGUEST_TRAP_ENTRY * 8 + 2, "#GP error code %#x, want %#x", error,
	      LGUEST_TRAP_ENTRY * 8 + 2);
	pass();
	return 0;
}
