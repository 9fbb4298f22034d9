/* user_int3_gp (spec 5.3): int3 from user mode through a DPL-1 gate is a #GP with error code
 * 3 * 8 + 2 at the int3 itself; through a DPL-3 gate it is a breakpoint after it. */
#define GUEST "user_int3_gp"
#include "check.h"

extern char user_int3[], after_user_int3[];

static void user_code(void)
{
	__asm__ __volatile__(".globl user_int3, after_user_int3\n"
			     "user_int3: int3\n"
			     "after_user_int3:");
	__builtin_trap(); /* the trap above must end the user code */
}

/* The breakpoint handler, entered with EIP after the int3: end the user code there. */
static void breakpoint(struct trap_frame *frame)
{
	user_trap = *frame;
	user_return(0xB9);
}

int main(void)
{
	prepare_user_mode();
	set_trap_handler(TRAP_GP, user_trap_return, IDT_TYPE_INTERRUPT_GATE, 1);
	set_trap_handler(3, breakpoint, IDT_TYPE_TRAP_GATE, 1);
	uint32_t error = enter_user(user_code);
	CHECK(error == 3 * 8 + 2, "int3 through a DPL-1 gate: %#x, want #GP error 0x1a", error);
	CHECK(user_trap.vector == TRAP_GP && user_trap.eip == (uint32_t)user_int3,
	      "vector %u at %#x, want #GP at the int3 (%#x)", user_trap.vector, user_trap.eip,
	      (uint32_t)user_int3);

	set_trap_handler(3, breakpoint, IDT_TYPE_TRAP_GATE, 3);
	uint32_t result = enter_user(user_code);
	CHECK(result == 0xB9, "int3 through a DPL-3 gate ended with %#x", result);
	CHECK(user_trap.eip == (uint32_t)after_user_int3, "breakpoint frame EIP %#x, want %#x",
	      user_trap.eip, (uint32_t)after_user_int3);
	pass();
	return 0;
}
