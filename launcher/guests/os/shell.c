/*
 * shell.c: the guest's command line, on the virtio console.
 *
 * The shell is the guest's event loop: it waits for typed input in HALT (the console's irq, a
 * received frame's irq or a timer tick wake it), prints frames as they arrive, and runs one
 * command per line.  Input is echoed (the launcher puts a terminal in raw mode) and can be
 * edited with backspace; ^C drops the line, ^D on an empty line or the end of input powers the
 * guest off, so a session piped into the launcher runs its commands and then ends.
 *
 * The end of input is the launcher's empty input buffer (the project's launcher at end of file).
 * The 2.6.24 launcher gives no sign: at end of file it stops reading its console ("Failed to get
 * console input, ignoring console") and the guest cannot tell that from nobody typing.  With
 * "idle=S", S seconds without input count as the end of input too.
 */
#include "os.h"
#include "virtio_console.h"

#define LINE_MAX 256
#define PROMPT "lguest> "

/* --- Reading a line ------------------------------------------------------------------------- */

static bool something_to_do(void *arg)
{
	(void)arg;
	return events_pending();
}

/* A line into `line` (NUL-terminated): its length, or -1 at the end of input. */
static int read_line(char *line)
{
	static bool end_of_input, after_cr;
	static uint32_t last_input_ms;
	int len = 0;

	if (end_of_input)
		return -1;
	for (;;) {
		if (net && vnet_rx_pending(net)) {
			/* A frame arrived while typing: show it, then the line so far again. */
			kprintf("\n");
			net_poll();
			kprintf(PROMPT);
			con_write(line, (unsigned)len);
		}
		char c;
		int got = vcon_read(&c, 1);
		if (got < 0 || (got == 1 && c == 0x04 && len == 0)) {
			end_of_input = true;
			if (len == 0)
				return -1;
			kprintf("\n");
			break;
		}
		if (got == 0) {
			if (!vcon_ready()) {
				end_of_input = true;
				return -1;
			}
			if (options.idle && uptime_ms() - last_input_ms >= options.idle * 1000) {
				kprintf("\nconsole: no input for %u s (idle=%u): end of input\n",
					options.idle, options.idle);
				end_of_input = true;
				return -1;
			}
			con_flush();
			wait_event(something_to_do, 0);
			continue;
		}
		last_input_ms = uptime_ms();
		bool was_cr = after_cr;
		after_cr = c == '\r';
		if (c == '\n' && was_cr)
			continue; /* the second half of a CR LF */
		if (c == '\r' || c == '\n') {
			if (options.echo)
				kprintf("\n");
			break;
		}
		if (c == 0x03) { /* ^C: forget the line */
			kprintf("^C\n");
			len = 0;
			break;
		}
		if (c == 0x7F || c == '\b') {
			if (len > 0) {
				len--;
				if (options.echo)
					kprintf("\b \b");
			}
			continue;
		}
		if ((unsigned char)c < 0x20 || len == LINE_MAX - 1)
			continue;
		line[len++] = c;
		if (options.echo)
			con_write(&c, 1);
	}
	line[len] = 0;
	return len;
}

/* --- Commands --------------------------------------------------------------------------------- */

/* The first word of *rest, NUL-terminated; *rest moves past it and the blanks after it. */
static char *next_word(char **rest)
{
	char *word = *rest, *end;

	while (*word == ' ')
		word++;
	for (end = word; *end && *end != ' '; end++)
		;
	*rest = end;
	if (*end) {
		*end = 0;
		for (*rest = end + 1; **rest == ' '; (*rest)++)
			;
	}
	return word;
}

static const char *const help_lines[] = {
	"help                 this list",
	"uptime               time since boot (Host wall clock) and timer ticks",
	"echo TEXT            print TEXT",
	"mem                  memory map and free pages",
	"devices              the virtio devices and their queues",
	"blk read N           show sector N of the block device",
	"blk write N TEXT     write TEXT (zero-padded) to sector N",
	"net send TEXT        broadcast an Ethernet frame (type 0x88b5) carrying TEXT",
	"stats                interrupts, hypercalls, faults, system calls",
	"user [hello|peek]    run a program at privilege level 3 (int $0x80 system calls)",
	"fault                touch an unmapped page; the page-fault handler maps it",
	"bench                a compute loop, stores and hypercalls, with their speed",
	"cmdline              the kernel command line and the options it set",
	"crash TEXT           die with TEXT (the launcher exits 1)",
	"poweroff             power down (the launcher exits 0)",
};

static void cmd_help(char *args)
{
	(void)args;
	kprintf("commands:\n");
	for (unsigned i = 0; i < ARRAY_SIZE(help_lines); i++)
		kprintf("  %s\n", help_lines[i]);
	kprintf("received frames are shown as they arrive; ^D or the end of input powers off\n");
}

static void cmd_uptime(char *args)
{
	(void)args;
	uint32_t ms = uptime_ms();
	kprintf("up %u.%03u s, %u timer tick%s at %u Hz\n", ms / 1000, ms % 1000, stats.ticks,
		stats.ticks == 1 ? "" : "s", options.hz);
}

static void cmd_echo(char *args)
{
	kprintf("%s\n", args);
}

static void cmd_mem(char *args)
{
	struct mem_stats m;
	(void)args;

	mm_stats(&m);
	kprintf("RAM      %#010x-%#010x  %u KB (e820)\n", 0, m.ram_bytes, m.ram_bytes >> 10);
	kprintf("  boot   %#010x-%#010x  zero page, command line (reserved)\n", 0, 0x100000);
	kprintf("  kernel %#010x-%#010x  %u KB\n", m.kernel_start, m.kernel_end,
		(m.kernel_end - m.kernel_start) >> 10);
	if (m.initrd_end)
		kprintf("  initrd %#010x-%#010x  %u KB (reserved)\n", m.initrd_start, m.initrd_end,
			(m.initrd_end - m.initrd_start) >> 10);
	if (m.device_end)
		kprintf("devices  %#010x-%#010x  device page and rings, above RAM\n", m.device_start,
			m.device_end);
	kprintf("mapped at %#x + physical; page directory %#x, %u page-table pages\n", PAGE_OFFSET,
		m.pgdir, m.table_pages);
	kprintf("pages: %u total, %u free (%u KB), %u in use\n", m.total_pages, m.free_pages,
		m.free_pages * 4, m.total_pages - m.free_pages);
}

static void cmd_devices(char *args)
{
	(void)args;
	devices_list();
}

static void cmd_blk(char *args)
{
	static uint8_t sector[SECTOR_SIZE];
	char *op = next_word(&args);
	uint32_t n;
	bool write = strcmp(op, "write") == 0;

	if (!blk) {
		kprintf("blk: no block device (give the launcher --block=FILE)\n");
		return;
	}
	if ((!write && strcmp(op, "read") != 0) || !parse_u32(next_word(&args), &n)) {
		kprintf("usage: blk read N | blk write N TEXT   (%u sectors)\n",
			(uint32_t)blk->capacity);
		return;
	}
	if (n >= blk->capacity) {
		kprintf("blk: sector %u is past the end (%u sectors)\n", n, (uint32_t)blk->capacity);
		return;
	}
	memset(sector, 0, sizeof(sector));
	uint32_t len = (uint32_t)strlen(args);
	if (write)
		memcpy(sector, args, len < SECTOR_SIZE ? len : SECTOR_SIZE);
	int status = vblk_rw(blk, write, n, sector, 1, wait_event);
	if (status != VIRTIO_BLK_S_OK) {
		kprintf("blk: %s of sector %u failed (status %d)\n", op, n, status);
		return;
	}
	if (write) {
		kprintf("blk: wrote %u bytes to sector %u\n", len < SECTOR_SIZE ? len : SECTOR_SIZE,
			n);
		return;
	}
	kprintf("blk: sector %u: ", n);
	print_quoted(sector, SECTOR_SIZE);
	kprintf("\n");
}

#define REPLY_WAIT_MS 100

static bool frame_waiting(void *arg)
{
	(void)arg;
	return vnet_rx_pending(net);
}

static void cmd_net(char *args)
{
	static uint8_t frame[VNET_FRAME_MAX];
	char *op = next_word(&args);

	if (!net) {
		kprintf("net: no network device (give the launcher --net=...)\n");
		return;
	}
	if (strcmp(op, "send") != 0) {
		kprintf("usage: net send TEXT\n");
		return;
	}
	uint32_t len = (uint32_t)strlen(args), room = VNET_FRAME_MAX - ETH_HEADER_BYTES;
	if (len > room)
		len = room;
	memset(frame, 0xFF, 6); /* broadcast */
	memcpy(frame + 6, net->mac, 6);
	frame[12] = ETH_TYPE_LOCAL >> 8;
	frame[13] = ETH_TYPE_LOCAL & 0xFF;
	memcpy(frame + ETH_HEADER_BYTES, args, len);
	uint32_t total = ETH_HEADER_BYTES + len;
	if (total < ETH_MIN_FRAME) {
		memset(frame + total, 0, ETH_MIN_FRAME - total);
		total = ETH_MIN_FRAME;
	}
	if (!vnet_send(net, frame, total)) {
		kprintf("net: the frame did not go out\n");
		return;
	}
	kprintf("net: sent %u-byte frame\n", total);
	/* A peer that answers usually does so at once: give it a moment, so that the answer shows
	 * under the command that caused it (later frames show whenever they arrive). */
	uint32_t start = uptime_ms();
	while (options.hz && !vnet_rx_pending(net) && uptime_ms() - start < REPLY_WAIT_MS)
		wait_event(frame_waiting, 0);
}

static void cmd_stats(char *args)
{
	(void)args;
	kprintf("interrupts  timer %u", stats.irqs[TIMER_IRQ]);
	if (vcon_ready())
		kprintf(", console %u", stats.irqs[vcon_input_queue()->irq]);
	if (blk)
		kprintf(", block %u", stats.irqs[blk->vq.irq]);
	if (net)
		kprintf(", net %u", stats.irqs[net->rx.irq]);
	kprintf("\n");
	uint32_t kicks = vcon_output_queue()->kicks + vcon_input_queue()->kicks;
	if (blk)
		kicks += blk->vq.kicks;
	if (net)
		kicks += net->rx.kicks + net->tx.kicks;
	/* Every one of these the guest made, except the early console's NOTIFYs. */
	kprintf("hypercalls  HALT %u, SET_CLOCKEVENT %u, NOTIFY %u (virtio kicks), SET_PTE %u, "
		"SET_PMD %u\n",
		stats.halts, stats.ticks + (options.hz ? 1 : 0), kicks, stats.set_ptes,
		stats.set_pmds);
	kprintf("traps       page faults %u (%u recovered), system calls %u\n", stats.page_faults,
		stats.faults_recovered, stats.syscalls);
}

static void cmd_user(char *args)
{
	user_run(next_word(&args));
}

/* Below PAGE_OFFSET only the user programs' pages are ever mapped (user.h), never this. */
#define FAULT_ADDR 0x40000000u

static void touch(void *arg)
{
	volatile uint32_t *p = (volatile uint32_t *)FAULT_ADDR;
	*p = 0x1234ABCD;
	*(uint32_t *)arg = *p;
}

static void cmd_fault(char *args)
{
	uint32_t value = 0;
	(void)args;

	kprintf("fault: writing to %#x, which is not mapped\n", FAULT_ADDR);
	uint32_t recovered = with_demand_paging(FAULT_ADDR, FAULT_ADDR + PAGE_SIZE, touch, &value);
	kprintf("fault: recovered from %u page fault%s, read back %#x; the page is unmapped again\n",
		recovered, recovered == 1 ? "" : "s", value);
}

/* Run `step` in rounds until `ms` of wall clock have passed; returns rounds and time taken. */
static uint32_t timed(void (*step)(void), uint32_t ms, uint32_t *elapsed)
{
	uint32_t rounds = 0, start = uptime_ms();

	do {
		step();
		rounds++;
		*elapsed = uptime_ms() - start;
	} while (*elapsed < ms);
	return rounds;
}

#define ALU_LOOPS (1u << 20) /* four instructions each */
#define STORE_BYTES (64u << 10)
#define HCALLS 1000u

static uint32_t bench_sink;
static uint32_t store_area[STORE_BYTES / 4];

static void alu_round(void)
{
	uint32_t a = bench_sink, b = 12345, n = ALU_LOOPS;
	__asm__ __volatile__("1: addl %%ebx, %%eax\n\t"
			     "xorl %%eax, %%ebx\n\t"
			     "decl %%ecx\n\t"
			     "jnz 1b"
			     : "+a"(a), "+b"(b), "+c"(n));
	bench_sink = a;
}

static void store_round(void)
{
	for (uint32_t i = 0; i < ARRAY_SIZE(store_area); i++)
		((volatile uint32_t *)store_area)[i] = i;
}

static void hcall_round(void)
{
	for (uint32_t i = 0; i < HCALLS; i++)
		hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
}

/* "<what>: <rate> million <unit>/s", from `rounds` of `per_round` operations in `ms`. */
static void report(const char *what, uint32_t rounds, uint32_t per_round, uint32_t ms,
		   const char *unit)
{
	uint64_t per_second = ms ? (uint64_t)rounds * per_round * 1000 / ms : 0;
	uint32_t thousandths = (uint32_t)(per_second / 1000); /* of a million */

	kprintf("bench: %-11s %u.%03u million %s/s (%u rounds in %u ms)\n", what,
		thousandths / 1000, thousandths % 1000, unit, rounds, ms);
}

static void cmd_bench(char *args)
{
	uint32_t ms;
	(void)args;

	if (options.hz == 0) {
		kprintf("bench: needs the timer to measure time (booted with hz=0)\n");
		return;
	}
	kprintf("bench: three loops of about a second, half a second and half a second...\n");
	uint32_t rounds = timed(alu_round, 1000, &ms);
	report("ALU loop", rounds, 4 * ALU_LOOPS, ms, "instructions");
	rounds = timed(store_round, 500, &ms);
	report("stores", rounds, STORE_BYTES / 4, ms, "32-bit stores");
	rounds = timed(hcall_round, 500, &ms);
	report("hypercalls", rounds, HCALLS, ms, "FLUSH_ASYNC hypercalls");
}

static void cmd_cmdline(char *args)
{
	(void)args;
	kprintf("command line: \"%s\"\n", command_line);
	kprintf("options: %s%shz=%u", options.quiet ? "quiet " : "", options.echo ? "" : "noecho ",
		options.hz);
	for (unsigned i = 0; i < options.run_count; i++)
		kprintf(" run=\"%s\"", options.run[i]);
	kprintf("\n");
}

static void cmd_crash(char *args)
{
	/* CRASH reads exactly 128 bytes of guest memory: give it a whole buffer. */
	static char reason[CRASH_MESSAGE_BYTES];

	if (!*args)
		args = "the shell's crash command";
	size_t len = strlen(args);

	if (len > sizeof(reason) - 1)
		len = sizeof(reason) - 1;
	memcpy(reason, args, len);
	reason[len] = 0;
	con_flush();
	lguest_crash(reason);
}

static void cmd_poweroff(char *args)
{
	(void)args;
	con_flush();
	lguest_power_off();
}

static const struct command {
	const char *name;
	void (*run)(char *args);
} commands[] = {
	{"help", cmd_help},   {"uptime", cmd_uptime}, {"echo", cmd_echo},
	{"mem", cmd_mem},     {"devices", cmd_devices}, {"blk", cmd_blk},
	{"net", cmd_net},     {"stats", cmd_stats},   {"user", cmd_user},
	{"fault", cmd_fault}, {"bench", cmd_bench},   {"cmdline", cmd_cmdline},
	{"crash", cmd_crash}, {"poweroff", cmd_poweroff},
};

static void run_line(char *line)
{
	char *args = line;
	char *name = next_word(&args);

	if (!*name)
		return;
	for (unsigned i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(name, commands[i].name) == 0) {
			commands[i].run(args);
			return;
		}
	}
	kprintf("%s: unknown command (try 'help')\n", name);
}

_Noreturn void shell(void)
{
	char line[LINE_MAX];

	for (unsigned i = 0; i < options.run_count; i++) {
		kprintf(PROMPT "%s\n", options.run[i]);
		size_t len = strlen(options.run[i]);
		if (len > LINE_MAX - 1)
			len = LINE_MAX - 1;
		memcpy(line, options.run[i], len);
		line[len] = 0;
		run_line(line);
	}
	if (!options.quiet)
		kprintf("Type 'help' for the commands.\n");
	for (;;) {
		kprintf(PROMPT);
		if (read_line(line) < 0)
			break;
		run_line(line);
		net_poll();
	}
	if (!options.quiet)
		kprintf("\nend of input: powering off\n");
	con_flush();
	lguest_power_off();
}
