/* self_modifying: a store into a page holding translated code runs the new code afterwards,
 * as on the hardware, whichever virtual address the store goes through.  (The project's
 * Unicorn lets stores to pages without code skip its invalidation check: patches/unicorn.)
 *
 * Each code page holds `mov $imm, %eax; ret`, run through a function pointer:
 *   1. rewritten through the address it runs at;
 *   2. rewritten through a second mapping of its page that was written before the code was
 *      first run (that mapping's TLB entry was fast then, and must not stay so);
 *   3. rewritten by the code itself, one instruction ahead of where it runs. */
#define GUEST "self_modifying"
#include "check.h"

#define ALIAS 0x80000000u
#define MOV_EAX 0xb8 /* mov $imm32, %eax */
#define RET 0xc3
#define MOVL_TO_MEMORY 0x05c7 /* movl $imm32, disp32 (bytes c7 05) */

static uint8_t direct[PAGE_SIZE] __attribute__((aligned(4096)));
static uint8_t aliased[PAGE_SIZE] __attribute__((aligned(4096)));
static uint8_t ahead[PAGE_SIZE] __attribute__((aligned(4096)));
static uint32_t alias_table[1024] __attribute__((aligned(4096)));

typedef uint32_t (*code_fn)(void);

/* `mov $value, %eax; ret` at `at`; returns where the immediate is. */
static volatile uint32_t *put_mov_ret(volatile uint8_t *at, uint32_t value)
{
	at[0] = MOV_EAX;
	*(volatile uint32_t *)(at + 1) = value;
	at[5] = RET;
	return (volatile uint32_t *)(at + 1);
}

static uint32_t run(const uint8_t *code)
{
	__asm__ __volatile__("" ::: "memory");
	return ((code_fn)(uintptr_t)code)();
}

int main(void)
{
	volatile uint32_t *imm = put_mov_ret(direct, 1);
	uint32_t got;

	CHECK((got = run(direct)) == 1, "direct code returned %u before any rewrite", got);
	*imm = 2;
	CHECK((got = run(direct)) == 2, "direct code returned %u after its own page was rewritten", got);

	install_page_table(ALIAS, alias_table);
	set_pte(alias_table, ALIAS, __pa(aliased) | PTE_PRESENT | PTE_RW);
	imm = put_mov_ret((volatile uint8_t *)ALIAS, 10);
	CHECK((got = run(aliased)) == 10, "aliased code returned %u, written as 10", got);
	*imm = 11;
	CHECK((got = run(aliased)) == 11, "aliased code returned %u after a rewrite through the alias",
	      got);

	/* movl $31, (imm of the mov that follows); mov $30, %eax; ret */
	volatile uint32_t *next_imm = (volatile uint32_t *)(ahead + 10 + 1);
	*(volatile uint16_t *)ahead = MOVL_TO_MEMORY;
	*(volatile uint32_t *)(ahead + 2) = (uint32_t)(uintptr_t)next_imm;
	*(volatile uint32_t *)(ahead + 6) = 31;
	put_mov_ret(ahead + 10, 30);
	CHECK((got = run(ahead)) == 31, "code that rewrote its next instruction returned %u", got);
	CHECK(*next_imm == 31, "the rewritten immediate reads %u", *next_imm);

	pass();
	return 0;
}
