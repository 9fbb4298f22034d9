/* user_gp_dpl1 (spec 5.3): `int $0x80` from user mode through a DPL-1 gate is a #GP with error
 * code 0x80 * 8 + 2, reflected to the guest's #GP handler. */
#define GUEST "user_gp_dpl1"
#include "check.h"

static volatile uint32_t syscalls;

static void syscall(struct trap_frame *frame)
{
	(void)frame;
	syscalls++;
}

static void user_code(void)
{
	__asm__ __volatile__("int $0x80" : : "a"(1) : "memory");
	__builtin_trap(); /* the trap above must end the user code */
}

int main(void)
{
	prepare_user_mode();
	set_trap_handler(SYSCALL_VECTOR, syscall, IDT_TYPE_TRAP_GATE, 1);
	set_trap_handler(TRAP_GP, user_trap_return, IDT_TYPE_INTERRUPT_GATE, 1);
	uint32_t error = enter_user(user_code);
	CHECK(syscalls == 0, "the DPL-1 gate was entered from user mode");
	CHECK(trap_from_user(&user_trap), "#GP at privilege level 1, eip %#x", user_trap.eip);
	CHECK(error == SYSCALL_VECTOR * 8 + 2, "#GP error code %#x, want %#x", error,
	      SYSCALL_VECTOR * 8 + 2);
	pass();
	return 0;
}
