/*
 * main.c: the default guest's boot, from the runtime's entry to the shell.
 *
 * By the time main() runs, rt/entry.S has made LGUEST_INIT (the first hypercall) and jumped to
 * the kernel's high addresses on the launcher's page tables.  Then, in the order Linux's
 * lguest_init() and start_kernel() do the same things:
 *
 *   1. the command line (boot_params.cmd_line_ptr, at 0x1000) and its options;
 *   2. memory: the e820 map says how much RAM; our own page tables, then NEW_PGTABLE;
 *   3. the GDT (LOAD_GDT, with user segments) and the IDT (LOAD_IDT_ENTRY per vector);
 *   4. SET_STACK: the stack the Host switches to when user mode traps;
 *   5. the clock: SET_CLOCKEVENT one-shots re-armed on every tick; interrupts on;
 *   6. the devices on the page above RAM, the console first so output moves onto it;
 *   7. the shell, whose event loop sleeps in HALT between interrupts.
 *
 * Boot options (words of the command line; unknown ones are reported and ignored):
 *   quiet      no boot messages, only the prompt
 *   noecho     do not echo typed input (for a terminal that echoes by itself)
 *   hz=N       timer ticks per second, 0 to run without a tick (default 100)
 *   run=CMD    run CMD before the prompt, commas standing for spaces: run=blk,read,0;
 *              may be repeated, in order.  run=poweroff makes a guest that boots and stops.
 *   idle=S     S seconds without console input count as the end of input (the shell then
 *              powers off); for launchers that stop reading their console without telling
 *              the guest, as 2.6.24's does at end of file.  Needs the timer (hz above 0).
 */
#include "os.h"

#define MAX_HZ 10000
#define MAX_IDLE 86400 /* seconds: one day, far from uptime_ms() wrapping */

struct boot_options options = {.echo = true, .hz = 100};
char command_line[COMMAND_LINE_MAX];
static char option_words[COMMAND_LINE_MAX];

bool parse_u32(const char *text, uint32_t *out)
{
	uint32_t value = 0;

	if (!*text)
		return false;
	for (; *text; text++) {
		uint32_t digit = (uint32_t)(*text - '0');
		if (*text < '0' || *text > '9' || value > (0xFFFFFFFFu - digit) / 10)
			return false;
		value = value * 10 + digit;
	}
	*out = value;
	return true;
}

static void parse_option(char *word)
{
	if (strcmp(word, "quiet") == 0) {
		options.quiet = true;
	} else if (strcmp(word, "noecho") == 0) {
		options.echo = false;
	} else if (strncmp(word, "hz=", 3) == 0) {
		uint32_t hz;
		if (parse_u32(word + 3, &hz) && hz <= MAX_HZ)
			options.hz = hz;
		else
			boot_msg("boot: hz=%s is not a rate from 0 to %u: keeping %u\n", word + 3,
				 MAX_HZ, options.hz);
	} else if (strncmp(word, "idle=", 5) == 0) {
		if (!parse_u32(word + 5, &options.idle) || options.idle > MAX_IDLE) {
			options.idle = 0;
			boot_msg("boot: idle=%s is not a number of seconds up to %u: ignored\n",
				 word + 5, MAX_IDLE);
		}
	} else if (strncmp(word, "run=", 4) == 0 && options.run_count < ARRAY_SIZE(options.run)) {
		for (char *c = word + 4; *c; c++)
			if (*c == ',')
				*c = ' ';
		options.run[options.run_count++] = word + 4;
	} else {
		boot_msg("boot: ignoring unknown option '%s'\n", word);
	}
}

static void parse_command_line(void)
{
	const uint8_t *zero_page = __va(boot_params_phys);
	uint32_t pointer = *(const uint32_t *)(zero_page + BOOT_CMD_LINE_PTR);
	const char *text = pointer ? __va(pointer) : "";
	size_t len = 0;

	while (len < COMMAND_LINE_MAX - 1 && text[len])
		len++;
	memcpy(command_line, text, len);
	command_line[len] = 0;
	/* The launcher ends every argument with a space; drop the last one. */
	while (len > 0 && command_line[len - 1] == ' ')
		command_line[--len] = 0;

	/* Split into words; "quiet" must be known before any other option may print. */
	char *words[128];
	unsigned count = 0;
	memcpy(option_words, command_line, len + 1);
	for (char *p = option_words; *p && count < ARRAY_SIZE(words);) {
		if (*p == ' ') {
			*p++ = 0;
			continue;
		}
		words[count++] = p;
		while (*p && *p != ' ')
			p++;
	}
	for (unsigned i = 0; i < count; i++)
		if (strcmp(words[i], "quiet") == 0)
			options.quiet = true;
	boot_msg("lguest-os: booting, command line \"%s\"\n", command_line);
	for (unsigned i = 0; i < count; i++)
		parse_option(words[i]);
}

int main(void)
{
	struct mem_stats mem;

	parse_command_line();

	mm_init();
	mm_switch_tables();
	mm_stats(&mem);
	boot_msg("mm: %u MB RAM, kernel %#x-%#x, own page tables at %#x (%u pages), "
		 "%u launcher table pages freed\n",
		 mem.ram_bytes >> 20, mem.kernel_start, mem.kernel_end, mem.pgdir, mem.table_pages,
		 mem.launcher_tables_freed);

	rt_load_user_gdt();
	traps_init();
	user_init();
	timer_init(options.hz);
	irq_enable();
	devices_init();

	mm_stats(&mem);
	boot_msg("lguest-os: up in %u ms, %u of %u pages free, timer at %u Hz\n", uptime_ms(),
		 mem.free_pages, mem.total_pages, options.hz);
	shell();
}
