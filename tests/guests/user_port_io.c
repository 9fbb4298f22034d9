/* user_port_io (spec 5.2): port I/O is emulated only for the kernel (CS RPL 1); from user mode
 * an `in` is a #GP(0) reflected to the guest, EIP still at the instruction. */
#define GUEST "user_port_io"
#include "check.h"

static uint8_t kernel_stack[PAGE_SIZE] __attribute__((aligned(4096)));
static uint8_t user_stack[PAGE_SIZE] __attribute__((aligned(4096)));
extern char user_in_insn[];
static volatile uint32_t eip, cs, from_user;

static void general_protection(struct trap_frame *frame)
{
	eip = frame->eip;
	cs = frame->cs;
	from_user = trap_from_user(frame);
	user_return(frame->error_code);
}

#define EMULATED 0xFFFFFFFF

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
	rt_load_user_gdt();
	hcall(LHCALL_SET_STACK, GUEST_DS, (uint32_t)kernel_stack + sizeof(kernel_stack), 1);
	set_trap_handler(TRAP_GP, general_protection, IDT_TYPE_INTERRUPT_GATE, 1);
	set_trap_handler(TRAP_UD, invalid_opcode, IDT_TYPE_INTERRUPT_GATE, 1);
	uint32_t error = run_user(user_code, (uint32_t)user_stack + sizeof(user_stack));
	CHECK(error != EMULATED, "the in was emulated for user mode instead of a #GP");
	CHECK(from_user, "the #GP did not come from user mode (CS %#x, EIP %#x, error %#x)", cs, eip,
	      error);
	CHECK(error == 0, "#GP error code %#x, want 0", error);
	CHECK(eip == (uint32_t)user_in_insn, "#GP at %#x, want the in at %#x", eip,
	      (uint32_t)user_in_insn);
	pass();
	return 0;
}
