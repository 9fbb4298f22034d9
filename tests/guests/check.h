/*
 * check.h: how a one-behaviour test guest reports its verdict through the launcher.
 *
 * Each guest defines GUEST (its name) before including this.  pass() prints "PASS <name>" on
 * the early console; main then returns and the guest powers off (launcher exit status 0).
 * CHECK() failing crashes with "FAIL <name>: <detail>", which the launcher prints as
 * "lguest: CRASH: FAIL <name>: ..." and exits 1.  Kill-reason guests report nothing: the Host's
 * kill reason is their verdict.
 *
 * Also: small helpers several guests share: busy waits, counting timer interrupts, user mode
 * (stacks, a trap handler that ends the user code), page tables and segment descriptors, and
 * the launcher's pfnlimit worked out from its device page.
 */
#ifndef CHECK_H
#define CHECK_H

#include "lguest.h"

#ifndef GUEST
#error "define GUEST before including check.h"
#endif

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			panic("FAIL " GUEST ": " __VA_ARGS__);                                     \
	} while (0)

static inline void pass(void)
{
	printk("PASS %s\n", GUEST);
}

/* Spin without leaving the guest (no exits): the loop is register-only. */
static inline void spin_iterations(uint32_t n)
{
	__asm__ __volatile__("1: dec %0\n\tjnz 1b" : "+r"(n));
}

/* Spin until *flag becomes nonzero or about `limit` loop iterations pass; returns the flag. */
static inline uint32_t spin_until(volatile uint32_t *flag, uint32_t limit)
{
	while (!*flag && limit--)
		__asm__ __volatile__("");
	return *flag;
}

/* --- Timer interrupts, counted ------------------------------------------------------------- */

static volatile uint32_t timer_ticks __attribute__((unused));

static void __attribute__((unused)) count_timer_tick(struct trap_frame *frame)
{
	(void)frame;
	timer_ticks++;
}

/* Count timer interrupts in timer_ticks (an interrupt gate at vector 0x20; irq 0 stays masked
 * or unmasked as it was). */
static inline void count_timer_interrupts(void)
{
	set_trap_handler(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, count_timer_tick, IDT_TYPE_INTERRUPT_GATE,
			 1);
}

/* Keep running, exiting to the Host all along, for well over a millisecond (tens of millions
 * of instructions): a pending interrupt that can be taken will be. */
static inline void run_with_exits(void)
{
	for (int i = 0; i < 200; i++) {
		spin_iterations(200000);
		hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	}
}

/* --- User mode -------------------------------------------------------------------------------- */

/* The stack traps from user mode land on (SET_STACK), and the user code's own stack. */
static uint8_t trap_stack[2 * PAGE_SIZE] __attribute__((aligned(4096), unused));
static uint8_t user_stack[PAGE_SIZE] __attribute__((aligned(4096), unused));
/* The frame user_trap_return() saw. */
static struct trap_frame user_trap __attribute__((unused));

/* The user segments in the GDT, and SET_STACK on trap_stack. */
static inline void prepare_user_mode(void)
{
	rt_load_user_gdt();
	hcall(LHCALL_SET_STACK, GUEST_DS, (uint32_t)trap_stack + sizeof(trap_stack), 2);
}

/* Run fn at privilege level 3 on user_stack until a handler calls user_return(). */
static inline uint32_t enter_user(void (*fn)(void))
{
	return run_user(fn, (uint32_t)user_stack + sizeof(user_stack));
}

/* A trap handler that ends the user code: keeps the frame in user_trap, and enter_user()
 * returns the error code. */
static void __attribute__((unused)) user_trap_return(struct trap_frame *frame)
{
	user_trap = *frame;
	user_return(frame->error_code);
}

/* --- Page tables -------------------------------------------------------------------------------
 * Helpers for guests that build mappings of their own, after the jump high. */
static inline uint32_t *current_pgdir(void)
{
	return __va(lguest_data.pgdir);
}

/* Make VA's PDE in the current page directory point at the page table `table` (a page-aligned
 * guest array), then tell the Host (SET_PMD). */
static inline void install_page_table(uint32_t va, uint32_t *table)
{
	current_pgdir()[va >> 22] = __pa(table) | PTE_PRESENT | PTE_RW | PTE_USER;
	hcall(LHCALL_SET_PMD, lguest_data.pgdir, va >> 22, 0);
}

static inline uint32_t *pte_slot(uint32_t *table, uint32_t va)
{
	return &table[(va >> PAGE_SHIFT) & 1023];
}

/* Set a PTE and tell the Host, as Linux's set_pte_at does. */
static inline void set_pte(uint32_t *table, uint32_t va, uint32_t pte)
{
	*pte_slot(table, va) = pte;
	hcall(LHCALL_SET_PTE, lguest_data.pgdir, va & ~(PAGE_SIZE - 1), pte);
}

static inline uint32_t read_u32(uint32_t va)
{
	return *(volatile uint32_t *)va;
}

static inline void write_u32(uint32_t va, uint32_t value)
{
	*(volatile uint32_t *)va = value;
}

/* An i386 segment descriptor {lo, hi}: base, 4 KB-granular limit in pages, access byte
 * (present, DPL, type), 32-bit. */
static inline void make_descriptor(uint32_t desc[2], uint32_t base, uint32_t limit_pages,
				   uint32_t access)
{
	desc[0] = (base & 0xFFFF) << 16 | (limit_pages & 0xFFFF);
	desc[1] = (base & 0xFF000000) | 0x00C00000 | (limit_pages & 0xF0000) | access << 8 |
		  ((base >> 16) & 0xFF);
}

/* The access rights of a selector as `lar` sees them (hi & 0x00F0FF00), or 0 if invisible. */
static inline uint32_t access_rights(uint32_t selector)
{
	uint32_t rights = 0;

	__asm__ __volatile__("lar %1, %0\n\t"
			     "jz 1f\n\t"
			     "xorl %0, %0\n"
			     "1:"
			     : "+r"(rights)
			     : "r"(selector)
			     : "cc");
	return rights;
}

/*
 * The launcher's pfnlimit: RAM (the zero page's e820 entry) plus the device pages above it,
 * whose last virtqueue ends it (spec 8: device page at mem, two pages per virtqueue).  Runs at
 * PHYSICAL addresses, before LGUEST_INIT (so the page directory is the launcher's, at
 * mem - 4096 without an initrd); maps the device page at VA mem through a spare page table.
 */
static inline uint32_t phys_find_pfnlimit(void)
{
	static uint32_t devpage_table[1024] __attribute__((aligned(4096)));
	uint32_t mem = *(volatile uint32_t *)(*PHYS_PTR(boot_params_phys) + BOOT_E820_MAP + 8);
	uint32_t *pgdir = (uint32_t *)(mem - PAGE_SIZE);
	uint32_t *table;

	if (pgdir[mem >> 22] & PTE_PRESENT) {
		table = (uint32_t *)(pgdir[mem >> 22] & ~(PAGE_SIZE - 1));
	} else {
		table = PHYS_PTR(devpage_table[0]);
		pgdir[mem >> 22] = (uint32_t)table | PTE_PRESENT | PTE_RW;
	}
	table[(mem >> PAGE_SHIFT) & 1023] = mem | PTE_PRESENT;

	const volatile uint8_t *page = (const volatile uint8_t *)mem;
	uint32_t limit = mem / PAGE_SIZE + 1;
	for (uint32_t at = 0; at + DEVICE_DESC_HEADER <= PAGE_SIZE && page[at];) {
		uint32_t config_len = page[at + 1];
		const volatile uint8_t *config = page + at + DEVICE_DESC_HEADER;
		for (uint32_t i = 0; i + 2 <= config_len; i += 2 + config[i + 1]) {
			if ((config[i] & ~CONFIG_TLV_CONSUMED) == VIRTIO_CONFIG_F_VIRTQUEUE &&
			    config[i + 1] == 8) {
				uint32_t pfn = config[i + 6] | config[i + 7] << 8 | config[i + 8] << 16 |
					       (uint32_t)config[i + 9] << 24;
				if (pfn + VIRTQUEUE_PAGES > limit)
					limit = pfn + VIRTQUEUE_PAGES;
			}
		}
		at += DEVICE_DESC_HEADER + config_len;
	}
	return limit;
}

#endif
