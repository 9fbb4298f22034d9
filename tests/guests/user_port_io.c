/* user_port_io (spec 5.2): port I/O is emulated only for the kernel (CS RPL 1); from user mode
 * an `in` is a #GP(0) reflected to the guest, with the user frame and EIP at the instruction. */
#define GUEST "user_port_io"
#include "check.h"

#define EMULATED 0xFFFFFFFF
extern char user_in_insn[];

/* Reached only if the in was emulated (or ignored) rather than refused. */
static void invalid_opcode(struct trap_frame *frame)
{
	(void)frame;
	user_return(EMULATED);
}

static void user_code(void)
{
	__asm__ __volatile__(".globl user_in_insn\n"
			     "user_in_insn: inb $0x60, %%al\n\t"
			     "ud2"
			     :
			     :
			     : "eax");
}

int main(void)
{
	prepare_user_mode();
	set_trap_handler(TRAP_GP, user_trap_return, IDT_TYPE_INTERRUPT_GATE, 1);
	set_trap_handler(TRAP_UD, invalid_opcode, IDT_TYPE_INTERRUPT_GATE, 1);
	uint32_t error = enter_user(user_code);
	CHECK(error != EMULATED, "the in was emulated for user mode instead of a #GP");
	CHECK(trap_from_user(&user_trap), "the #GP frame is not a user one (CS %#x, EIP %#x)",
	      user_trap.cs, user_trap.eip);
	CHECK(error == 0, "#GP error code %#x, want 0", error);
	CHECK(user_trap.eip == (uint32_t)user_in_insn, "#GP at %#x, want the in at %#x",
	      user_trap.eip, (uint32_t)user_in_insn);
	pass();
	return 0;
}
