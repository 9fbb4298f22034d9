/*
 * lguest.h: the guest runtime's one header, for every guest program (test guests, the default OS).
 *
 * Where this sits: a guest is a freestanding i386 program that the launcher loads and the
 * lguestfs Host runs at privilege level 1.  It talks to the Host only through the paravirtual
 * ABI of Linux 2.6.24 (shared/spec/lguest-abi.md sections 3-5, 10): hypercalls (int $0x1f),
 * struct lguest_data, an IDT loaded one entry at a time, and an iret path with a "no interrupt"
 * window.  This header is that ABI for C, plus a few helpers every guest wants.
 *
 * The life of a guest, top to bottom:
 *   entry.S   runs at the physical entry point with the launcher's identity page tables;
 *             calls rt_pre_init() (optional, still physical), makes LGUEST_INIT, maps itself
 *             at PAGE_OFFSET like Linux (copies the present PDEs to index 768+), jumps high.
 *   start.c   calls main(); when main returns the guest powers off (CRASH "Power down",
 *             which the launcher turns into exit status 0).
 *   traps.S   256 entry stubs and the iret path; traps.c dispatches them to C handlers.
 *   console.c early console (NOTIFY of a NUL-terminated string), printf-like formatting, panic.
 *
 * All constants (LHCALL_*, LD_*, PTE_*, PAGE_OFFSET ...) come from lguest_abi.h, generated at
 * build time from lguestfs/abi.py, so they are defined exactly once.  This header works from
 * assembly too (only the constants and the layout macros below are visible there).
 *
 * A complete guest, hello.c:
 *     #include "lguest.h"
 *     int main(void) { printk("hello from %u MB\n", guest_mem_size() >> 20); return 0; }
 * `python -m launcher.guests.build hello.c` prints the ELF's path (build/guests/single/hello.elf);
 * `lguest-launch 16 build/guests/single/hello.elf` prints the line, then "lguest: CRASH: Power
 * down", and exits 0.  tests/guests/ holds many more, one behaviour each.
 *
 * Stability: this is the API the default OS and the virtio drivers build on.  Additions are
 * fine; changing a name or a signature needs the lead's say.
 */
#ifndef LGUEST_H
#define LGUEST_H

#include "lguest_abi.h"

#define BOOT_STACK_SIZE 16384

/* User-mode segments loaded by rt_load_user_gdt() (Linux's slots, spec 7.2). */
#define USER_CS 0x73 /* GDT entry 14, RPL 3 */
#define USER_DS 0x7B /* GDT entry 15, RPL 3 */

#ifndef __ASSEMBLER__

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- Addresses ------------------------------------------------------------------------------
 * Every hypercall takes guest-PHYSICAL addresses; the guest runs at virtual PAGE_OFFSET + phys.
 * The identity mapping of low memory set up by the launcher stays in place too.
 */
#define __pa(x) ((uint32_t)(x) - PAGE_OFFSET)
#define __va(x) ((void *)((uint32_t)(x) + PAGE_OFFSET))
/* Before the jump high (in rt_pre_init) data must be reached through its physical address. */
#define PHYS_PTR(var) ((__typeof__(&(var)))__pa(&(var)))

#define barrier() __asm__ __volatile__("" ::: "memory")
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* --- struct lguest_data (spec 4): the page shared with the Host -------------------------- */

/* One async hypercall slot: the saved eax, ebx, ecx, edx, hence this odd order. */
struct hcall_args {
	uint32_t arg0; /* the call number */
	uint32_t arg2;
	uint32_t arg3;
	uint32_t arg1;
};

struct lguest_data {
	uint32_t irq_enabled;        /* our virtual IF: X86_EFLAGS_IF or 0 */
	uint32_t blocked_interrupts; /* bit n set = irq n masked */
	uint32_t cr2;                /* Host writes the fault address before reflecting a #PF */
	struct {
		int32_t tv_sec;
		int32_t tv_nsec;
	} time; /* wall clock, Host-refreshed */
	uint8_t hcall_status[LHCALL_RING_SIZE]; /* 0xFF = free/done, 0 = pending */
	struct hcall_args hcalls[LHCALL_RING_SIZE];
	uint32_t reserve_mem; /* Host-written at INIT */
	uint32_t tsc_khz;     /* Host-written at INIT */
	uint32_t pgdir;       /* Host-written at INIT: the launcher's page directory */
	uint32_t noirq_start; /* no interrupt injected while noirq_start <= EIP < noirq_end */
	uint32_t noirq_end;
	uint32_t kernel_address; /* PAGE_OFFSET */
	uint32_t syscall_vec;    /* SYSCALL_VECTOR */
};

/* The one instance, statically initialised as spec 10 asks (lguest_data.c). */
extern struct lguest_data lguest_data;
/* The iret tail the noirq window covers (traps.S). */
extern char lguest_noirq_start[], lguest_noirq_end[];

/* --- Hypercalls (spec 3): EAX call, EDX arg1, EBX arg2, ECX arg3, int $0x1f ----------------- */

static inline void hcall(uint32_t call, uint32_t arg1, uint32_t arg2, uint32_t arg3)
{
	__asm__ __volatile__("int $0x1f" : "+a"(call) : "d"(arg1), "b"(arg2), "c"(arg3) : "memory");
}

/* Queue a call in the async ring (spec 3.2); made directly if the next slot is still pending.
 * The ring drains at the next synchronous hypercall (FLUSH_ASYNC or any other). */
void async_hcall(uint32_t call, uint32_t arg1, uint32_t arg2, uint32_t arg3);

static inline void lguest_notify(uint32_t phys_addr)
{
	hcall(LHCALL_NOTIFY, phys_addr, 0, 0);
}

/* Sleep until an interrupt is delivered; the Host turns interrupts on (HALT acts as sti;hlt). */
static inline void lguest_halt(void)
{
	hcall(LHCALL_HALT, 0, 0, 0);
}

/* One-shot timer: irq 0 (vector 0x20) after ns nanoseconds; 0 cancels. */
static inline void lguest_set_timer(uint32_t ns)
{
	hcall(LHCALL_SET_CLOCKEVENT, ns, 0, 0);
}

/* CRASH with this text (the Host reads exactly 128 bytes at msg: keep it in guest memory). */
_Noreturn void lguest_crash(const char *msg);
/* CRASH "Power down": the launcher exits with status 0. */
_Noreturn void lguest_power_off(void);

/* --- Paravirtual interrupt flag (spec 10 step 5): plain loads and stores of irq_enabled ----- */

static inline uint32_t irq_save(void)
{
	uint32_t flags = *(volatile uint32_t *)&lguest_data.irq_enabled;
	*(volatile uint32_t *)&lguest_data.irq_enabled = 0;
	barrier();
	return flags;
}

static inline void irq_restore(uint32_t flags)
{
	barrier();
	*(volatile uint32_t *)&lguest_data.irq_enabled = flags;
}

static inline void irq_disable(void)
{
	irq_restore(0);
}

/* A pending interrupt is taken at the next exit to the Host (any hypercall or trap). */
static inline void irq_enable(void)
{
	irq_restore(X86_EFLAGS_IF);
}

static inline void irq_unmask(unsigned int irq)
{
	*(volatile uint32_t *)&lguest_data.blocked_interrupts &= ~(1u << irq);
}

static inline void irq_mask(unsigned int irq)
{
	*(volatile uint32_t *)&lguest_data.blocked_interrupts |= 1u << irq;
}

/* --- Traps and interrupts (spec 5) ------------------------------------------------------------
 * Every vector has an entry stub (traps.S) that builds a struct trap_frame and calls the C
 * handler registered for it; the handler may change the frame (registers, eip) and the stub
 * returns through the iret path, which copies the stacked IF back into irq_enabled inside the
 * noirq window.  Nothing is in the IDT until a guest asks: an unexpected trap with no entry
 * kills the guest "unhandled trap ..." exactly as the spec's rows expect.
 */
struct trap_frame {
	uint32_t edi, esi, ebp, esp_at_pusha, ebx, edx, ecx, eax; /* pushal order */
	uint32_t gs, fs, es, ds;
	uint32_t vector;
	uint32_t error_code; /* 0 for vectors without one */
	uint32_t eip, cs, eflags;
	uint32_t user_esp, user_ss; /* only present when the trap came from user mode */
};

static inline bool trap_from_user(const struct trap_frame *frame)
{
	return (frame->cs & 3) != GUEST_PL;
}

typedef void (*trap_handler_t)(struct trap_frame *frame);

/* Register fn for vector and load an IDT entry (IDT_TYPE_INTERRUPT_GATE or IDT_TYPE_TRAP_GATE,
 * privilege dpl) that points at the vector's stub. */
void set_trap_handler(unsigned int vector, trap_handler_t fn, unsigned int type, unsigned int dpl);
/* Only register fn for vector (no hypercall): for guests that load the IDT entry themselves,
 * e.g. through the async ring. */
void set_trap_function(unsigned int vector, trap_handler_t fn);
/* The IDT entry words for vector's stub, as LOAD_IDT_ENTRY takes them (for tests of odd ones). */
uint32_t idt_entry_lo(unsigned int vector);
uint32_t idt_entry_hi(unsigned int vector, unsigned int type, unsigned int dpl);
/* Erase the IDT entry (LOAD_IDT_ENTRY with the present bit clear) and forget the handler. */
void clear_trap_handler(unsigned int vector);

/* User mode.  rt_load_user_gdt() loads a GDT with flat user segments (USER_CS, USER_DS).
 * run_user() then enters fn at privilege level 3 with ESP = user_stack_top and the current
 * interrupt flag, and returns only when a trap handler calls user_return(value): fn must end in
 * a trap (a syscall, a fault).  Traps from user mode land on the SET_STACK stack, so make that
 * hypercall first. */
void rt_load_user_gdt(void);
uint32_t run_user(void (*fn)(void), uint32_t user_stack_top);
/* From a trap handler: abandon the user-mode code and make run_user return value. */
_Noreturn void user_return(uint32_t value);

/* --- Boot ---------------------------------------------------------------------------------- */

/* Physical address of boot_params (ESI at entry: 0 with the lguest launcher). */
extern uint32_t boot_params_phys;
/* Guest RAM in bytes, from the zero page's e820 map (the launcher's MEM_MB << 20). */
uint32_t guest_mem_size(void);
/* The boot stack (the kernel stack traps land on unless SET_STACK says otherwise). */
extern uint8_t boot_stack[BOOT_STACK_SIZE];
/* Optional hook, called before LGUEST_INIT at PHYSICAL addresses (use PHYS_PTR for data). */
void rt_pre_init(void);
/* The guest's program. When it returns, the guest powers off. */
int main(void);

/* --- Console and formatting ----------------------------------------------------------------- */

/* Early console: NOTIFY the physical address of a NUL-terminated string (spec 10 step 9). */
void early_puts(const char *s);
/* printf to the early console (%d %i %u %x %X %p %s %c %%, flags 0 - #, width, .precision
 * for %s, l, ll). */
int printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* CRASH with a formatted reason (at most 127 characters). */
_Noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- Freestanding string helpers (gcc may emit calls to the first four itself) -------------- */

void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

#endif /* !__ASSEMBLER__ */
#endif /* LGUEST_H */
