/*
 * os.h: the default guest's own interfaces, between its few files.
 *
 * The default guest is a tiny operating system for the lguest ABI, booted like a 2.6.24 vmlinux:
 *   main.c     boot, in order: command line, memory, own page tables, GDT, IDT, kernel stack,
 *              timer, devices, then the shell; the event loop that idles in HALT.
 *   mm.c       the page allocator over guest RAM and the kernel's page tables (NEW_PGTABLE,
 *              SET_PTE, SET_PMD for every change once they are live).
 *   console.c  kprintf() to the early console until the virtio console is up, then to it; line
 *              input with echo and editing.
 *   devices.c  the virtio devices (rt/virtio*.c) wired to interrupts; waiting for them in HALT.
 *   traps.c    exceptions, the page-fault handler, the timer tick, statistics.
 *   user.c     a program run at privilege level 3 that makes system calls through int $0x80.
 *   shell.c    the commands.
 * The runtime (rt/) underneath supplies entry, hypercalls, lguest_data, the IDT stubs and the
 * iret path with its noirq window.
 */
#ifndef OS_H
#define OS_H

#include "lguest.h"
#include "virtio.h"
#include "virtio_blk.h"
#include "virtio_net.h"

/* --- main.c: boot options (from the command line at 0x1000) --------------------------------- */

struct boot_options {
	bool quiet;             /* "quiet": no boot messages */
	bool echo;              /* "noecho" turns off echoing typed input */
	uint32_t hz;            /* "hz=N": timer ticks per second (0: no tick) */
	uint32_t idle;          /* "idle=S": no console input for S seconds ends input (0: never) */
	const char *run[8];     /* "run=CMD": commands run before the prompt (',' = ' ') */
	unsigned run_count;
};
extern struct boot_options options;
/* A decimal number that fits 32 bits, and nothing else, into *out. */
bool parse_u32(const char *text, uint32_t *out);
extern char command_line[COMMAND_LINE_MAX];

/* --- mm.c ----------------------------------------------------------------------------------- */

#define MAX_GUEST_MEM (1024u << 20)

struct mem_stats {
	uint32_t ram_bytes;        /* from the e820 map */
	uint32_t total_pages, free_pages;
	uint32_t kernel_start, kernel_end; /* physical */
	uint32_t pgdir;            /* our page directory (physical) */
	uint32_t table_pages;      /* page-table pages in use */
	uint32_t device_start, device_end; /* device pages mapped above RAM (physical) */
	uint32_t initrd_start, initrd_end; /* the launcher's --initrd, kept reserved (or 0, 0) */
	uint32_t launcher_tables_freed;
};

void mm_init(void);
/* Build the kernel's own page tables (RAM at PAGE_OFFSET, nothing at 0) and switch to them. */
void mm_switch_tables(void);
void mm_stats(struct mem_stats *stats);
/* One zeroed 4 KB page of RAM (its virtual address), or 0. */
void *page_alloc(void);
void page_free(void *page);
/* Map (pte flags != 0) or unmap (flags 0) the page at va, telling the Host. */
void map_page(uint32_t va, uint32_t phys, uint32_t flags);
/* Drop the page table under va (its pages must be unmapped already) and free it. */
void unmap_table(uint32_t va);
/* The physical address va maps to in our tables, or 0 when unmapped. */
uint32_t virt_to_phys_walk(uint32_t va);
/* virtio's mapper: pages above RAM (device page, rings) at PAGE_OFFSET + phys. */
void *map_device_pages(uint32_t phys, uint32_t pages);

/* --- console.c ------------------------------------------------------------------------------ */

int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void con_write(const char *text, unsigned len);
void con_flush(void);
/* `data` in quotes, without its trailing NULs (padding), unprintable bytes shown as '.'. */
void print_quoted(const uint8_t *data, uint32_t len);
/* Say something at boot, unless "quiet". */
int boot_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- traps.c -------------------------------------------------------------------------------- */

struct os_stats {
	uint32_t irqs[LGUEST_IRQS];
	uint32_t ticks;
	uint32_t page_faults, faults_recovered;
	uint32_t syscalls;
	uint32_t halts;            /* HALT hypercalls */
	uint32_t set_ptes, set_pmds; /* SET_PTE and SET_PMD hypercalls */
};
extern struct os_stats stats;

void traps_init(void);
void timer_init(uint32_t hz);
/* Milliseconds since boot by the Host's wall clock (lguest_data.time). */
uint32_t uptime_ms(void);
/* Run fn(arg) expecting a page fault in [lo, hi): the handler maps a fresh page there, reports
 * it and lets the access finish.  Returns how many faults were recovered. */
uint32_t with_demand_paging(uint32_t lo, uint32_t hi, void (*fn)(void *), void *arg);
/* Route device irq `irq` (vector 0x20 + irq) to the counting handler and unmask it. */
void enable_device_irq(unsigned irq);

/* --- devices.c ------------------------------------------------------------------------------ */

/* Ethernet framing of what `net send` sends and net_poll() shows. */
#define ETH_HEADER_BYTES 14  /* destination, source, type */
#define ETH_MIN_FRAME 60     /* without the FCS: shorter frames are padded with zeros */
#define ETH_TYPE_LOCAL 0x88B5 /* the IEEE's "local experimental" EtherType */

extern struct vblk *blk;  /* the first block device, or 0 */
extern struct vnet *net;  /* the network device, or 0 */

void devices_init(void);
void devices_list(void);
/* Sleep in HALT until done(arg) (the drivers' wait function). */
void wait_event(bool (*done)(void *), void *arg);
/* Whether something (typed input, a frame) wants the event loop's attention. */
bool events_pending(void);
/* Print any received frames. */
void net_poll(void);

/* --- user.c --------------------------------------------------------------------------------- */

/* SET_STACK for entries from user mode, and the int $0x80 gate. */
void user_init(void);
/* From a trap handler: a fault in user mode kills the program (run_user() returns). */
_Noreturn void user_fault(struct trap_frame *frame, const char *what);
/* Run the built-in user program `name` at CPL 3; prints what happens. */
void user_run(const char *name);

/* --- shell.c -------------------------------------------------------------------------------- */

_Noreturn void shell(void);

#endif
