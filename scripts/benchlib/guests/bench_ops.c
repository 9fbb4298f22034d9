/*
 * bench_ops: the guest scripts/bench drives, one measured operation at a time.
 *
 * Where this sits: scripts/bench plays the launcher.  Between two reads of the node (while this
 * guest is stopped) it writes a command into `bench_command` through the shared guest memory,
 * then reads; the guest picks the command up, does it, and NOTIFYs BENCH_DONE, so the bench times
 * the whole path launcher -> node -> handle -> guest -> CPU -> hypercall -> back.
 *
 * Run by an ordinary launcher (nobody wrote a command before INITIALIZE) it says so and powers
 * off, so it is harmless anywhere.  Like bench_block.c beside it, it belongs to the bench
 * (scripts/benchlib/guests/) and is built with the guest runtime by
 * launcher.guests.build.build_single.
 *
 * The loops the figures count are written in assembly between global labels
 * (bench_<name>_loop .. bench_<name>_loop_end): the raw-Unicorn reference runs the very same
 * bytes with ECX = iterations, so the two instruction rates compare identical code.
 *   compute:   4 instructions per iteration (add, xor, dec, jnz), no memory, no exits
 *   store:     one 4-byte store per iteration (plus dec, jnz)
 *   hypercall: one FLUSH_ASYNC hypercall per iteration: it never leaves the Host
 */
#include "lguest.h"

enum bench_op {
	BENCH_OP_IDLE = 0,      /* just answer BENCH_DONE */
	BENCH_OP_COMPUTE = 1,   /* count iterations of the compute loop */
	BENCH_OP_STORE = 2,     /* count stores */
	BENCH_OP_HYPERCALL = 3, /* count FLUSH_ASYNC hypercalls */
	BENCH_OP_NOTIFY = 4,    /* count NOTIFY(BENCH_TICK), then done */
	BENCH_OP_SPIN = 5,      /* spin without exits until the op changes (break, SIGKILL) */
	BENCH_OP_IRQ = 6,       /* halt with irq `arg` unmasked; its handler NOTIFYs BENCH_IRQ_SEEN */
	BENCH_OP_TIMER = 7,     /* SET_CLOCKEVENT(count ns), halt until the timer irq arrives */
	BENCH_OP_STANDALONE = 0xff, /* the initial value: no bench is driving this guest */
};

/* What the guest NOTIFYs: words the bench recognises (the bench is the launcher, nothing prints). */
#define BENCH_DONE 0xbe0c0001u
#define BENCH_TICK 0xbe0c0002u
#define BENCH_IRQ_SEEN 0xbe0c0003u

/* Written by the bench before INITIALIZE and between reads (at this ELF's symbol, in .data so
 * that the runtime's BSS clearing leaves the bench's first command alone). */
struct bench_command {
	uint32_t op;
	uint32_t count;
	uint32_t arg;
	uint32_t seq; /* echoed in bench_result.seq once the command is done */
};
volatile struct bench_command bench_command = {.op = BENCH_OP_STANDALONE};

/* Left by the guest for the bench. */
struct bench_result {
	uint32_t seq;
	uint32_t irqs;          /* device irqs seen by the handler */
	uint32_t timer_irqs;    /* timer irqs seen */
	int32_t timer_sec;      /* lguest_data.time as the Host wrote it when delivering the timer */
	int32_t timer_nsec;
};
volatile struct bench_result bench_result;

static uint32_t store_target;

static void __attribute__((noinline, noclone)) compute(uint32_t iterations)
{
	__asm__ __volatile__(".globl bench_compute_loop\n"
			     "bench_compute_loop:\n\t"
			     "add %%ebx, %%eax\n\t"
			     "xor %%eax, %%edx\n\t"
			     "dec %%ecx\n\t"
			     "jnz bench_compute_loop\n"
			     ".globl bench_compute_loop_end\n"
			     "bench_compute_loop_end:"
			     : "+c"(iterations)
			     :
			     : "eax", "ebx", "edx", "cc");
}

static void __attribute__((noinline, noclone)) store(uint32_t iterations)
{
	__asm__ __volatile__(".globl bench_store_loop\n"
			     "bench_store_loop:\n\t"
			     "mov %%eax, (%%edi)\n\t"
			     "dec %%ecx\n\t"
			     "jnz bench_store_loop\n"
			     ".globl bench_store_loop_end\n"
			     "bench_store_loop_end:"
			     : "+c"(iterations)
			     : "D"(&store_target), "a"(0)
			     : "memory", "cc");
}

static void __attribute__((noinline, noclone)) hypercalls(uint32_t iterations)
{
	__asm__ __volatile__(".globl bench_hypercall_loop\n"
			     "bench_hypercall_loop:\n\t"
			     "int $0x1f\n\t"
			     "dec %%ecx\n\t"
			     "jnz bench_hypercall_loop\n"
			     ".globl bench_hypercall_loop_end\n"
			     "bench_hypercall_loop_end:"
			     : "+c"(iterations)
			     : "a"(LHCALL_FLUSH_ASYNC), "d"(0), "b"(0)
			     : "memory", "cc");
}

static void device_irq(struct trap_frame *frame)
{
	(void)frame;
	bench_result.irqs++;
	lguest_notify(BENCH_IRQ_SEEN);
}

static void timer_irq(struct trap_frame *frame)
{
	(void)frame;
	bench_result.timer_sec = lguest_data.time.tv_sec;
	bench_result.timer_nsec = lguest_data.time.tv_nsec;
	bench_result.timer_irqs++;
}

static void wait_for_irqs(uint32_t irq)
{
	set_trap_handler(FIRST_EXTERNAL_VECTOR + irq, device_irq, IDT_TYPE_INTERRUPT_GATE, 1);
	irq_unmask(irq);
	irq_enable();
	while (bench_command.op == BENCH_OP_IRQ)
		lguest_halt();
	irq_disable();
	irq_mask(irq);
}

static void wait_for_timer(uint32_t ns)
{
	uint32_t seen = bench_result.timer_irqs;

	irq_enable();
	lguest_set_timer(ns);
	while (bench_result.timer_irqs == seen)
		lguest_halt();
	irq_disable();
}

int main(void)
{
	if (bench_command.op == BENCH_OP_STANDALONE) {
		early_puts("bench_ops: a guest for scripts/bench, which drives it; nothing to do\n");
		return 0;
	}
	set_trap_handler(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, timer_irq, IDT_TYPE_INTERRUPT_GATE, 1);
	irq_unmask(TIMER_IRQ);
	for (;;) {
		uint32_t count = bench_command.count;
		uint32_t i;

		switch (bench_command.op) {
		case BENCH_OP_COMPUTE:
			if (count)
				compute(count);
			break;
		case BENCH_OP_STORE:
			if (count)
				store(count);
			break;
		case BENCH_OP_HYPERCALL:
			if (count)
				hypercalls(count);
			break;
		case BENCH_OP_NOTIFY:
			for (i = 0; i < count; i++)
				lguest_notify(BENCH_TICK);
			break;
		case BENCH_OP_SPIN:
			while (bench_command.op == BENCH_OP_SPIN)
				;
			break;
		case BENCH_OP_IRQ:
			wait_for_irqs(bench_command.arg);
			break;
		case BENCH_OP_TIMER:
			wait_for_timer(count);
			break;
		default:
			break;
		}
		bench_result.seq = bench_command.seq;
		lguest_notify(BENCH_DONE);
	}
}
