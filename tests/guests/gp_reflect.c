/* gp_reflect (spec 5.2): a #GP that is not port I/O is reflected with its error code and EIP at
 * the faulting instruction: `cli` at privilege level 1 (error 0), and loading %ds with a
 * selector beyond the GDT (error = the selector, 0x7f8). */
#define GUEST "gp_reflect"
#include "check.h"

extern char cli_insn[], mov_ds_insn[];
static volatile uint32_t traps, eip, error_code;

static void general_protection(struct trap_frame *frame)
{
	traps++;
	eip = frame->eip;
	error_code = frame->error_code;
	frame->eip += frame->eip == (uint32_t)cli_insn ? 1 : 2; /* fa / 8e d8 */
}

int main(void)
{
	set_trap_handler(TRAP_GP, general_protection, IDT_TYPE_INTERRUPT_GATE, 1);
	__asm__ __volatile__(".globl cli_insn\n"
			     "cli_insn: cli");
	CHECK(traps == 1, "%u #GP traps for cli, want 1", traps);
	CHECK(eip == (uint32_t)cli_insn, "cli #GP at %#x, want %#x", eip, (uint32_t)cli_insn);
	CHECK(error_code == 0, "cli #GP error %#x, want 0", error_code);
	__asm__ __volatile__(".globl mov_ds_insn\n"
			     "mov_ds_insn: movl %0, %%ds"
			     :
			     : "a"(0x7F8));
	CHECK(traps == 2, "%u #GP traps after the bad selector, want 2", traps);
	CHECK(eip == (uint32_t)mov_ds_insn, "selector #GP at %#x, want %#x", eip,
	      (uint32_t)mov_ds_insn);
	CHECK(error_code == 0x7F8, "selector #GP error %#x, want 0x7f8", error_code);
	pass();
	return 0;
}
