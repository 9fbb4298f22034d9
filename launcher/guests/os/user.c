/*
 * user.c: user mode, the way Linux guests of 2.6.24 had it on lguest.
 *
 * The guest kernel runs at privilege level 1; its programs run at 3.  A program enters the
 * kernel through int $0x80, a DPL-3 trap gate, and the Host switches to the kernel stack named by
 * SET_STACK (spec 5.4) before pushing the frame, exactly as a TSS's esp1 would.  So SET_STACK is
 * made at boot, pointing at a stack of its own: the boot stack is busy with the kernel code that
 * called run_user() and must not be overwritten by the frame.
 *
 * Each run maps the programs' code (user.S) read-only and one stack page, both with the user
 * bit, under their own page table; the kernel's pages have no user bit, so a program that
 * touches them faults and is killed.  Everything is unmapped again when the program ends.
 */
#include "os.h"
#include "user.h"

extern const char user_programs_start[], user_programs_end[];
extern const char user_hello[], user_kernel_peek[];

static uint8_t kernel_trap_stack[2 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));

static struct {
	uint32_t syscalls;
	uint32_t cs;  /* the caller's code segment, as the last system call saw it */
	bool killed;
} run;

void user_fault(struct trap_frame *frame, const char *what)
{
	kprintf("user: %s at eip %#x (cr2 %#x, error %#x): program killed\n", what, frame->eip,
		lguest_data.cr2, frame->error_code);
	run.killed = true;
	user_return((uint32_t)-1);
}

static bool user_range(uint32_t addr, uint32_t len)
{
	return addr >= USER_CODE && len <= USER_STACK_TOP - USER_CODE &&
	       addr <= USER_STACK_TOP - len;
}

static void system_call(struct trap_frame *frame)
{
	stats.syscalls++;
	run.syscalls++;
	run.cs = frame->cs;
	switch (frame->eax) {
	case SYS_EXIT:
		user_return(frame->ebx);
	case SYS_WRITE:
		if (!user_range(frame->ebx, frame->ecx)) {
			frame->eax = (uint32_t)-1;
			break;
		}
		kprintf("user: ");
		con_write((const char *)frame->ebx, frame->ecx);
		con_flush();
		frame->eax = frame->ecx;
		break;
	default:
		frame->eax = (uint32_t)-1;
	}
}

void user_init(void)
{
	hcall(LHCALL_SET_STACK, GUEST_DS, (uint32_t)kernel_trap_stack + sizeof(kernel_trap_stack),
	      sizeof(kernel_trap_stack) / PAGE_SIZE);
	set_trap_handler(SYSCALL_VECTOR, system_call, IDT_TYPE_TRAP_GATE, 3);
}

void user_run(const char *name)
{
	const char *entry = user_hello;
	uint32_t size = (uint32_t)(user_programs_end - user_programs_start);

	if (name[0] && strcmp(name, "hello") != 0) {
		if (strcmp(name, "peek") != 0) {
			kprintf("user: no program '%s' (try: user hello, user peek)\n", name);
			return;
		}
		entry = user_kernel_peek;
	}
	uint8_t *code = page_alloc(), *stack = page_alloc();
	if (!code || !stack || size > PAGE_SIZE)
		panic("user: no memory for the program");
	memcpy(code, user_programs_start, size);
	map_page(USER_CODE, __pa(code), PTE_PRESENT | PTE_USER);
	map_page(USER_STACK_TOP - PAGE_SIZE, __pa(stack), PTE_PRESENT | PTE_RW | PTE_USER);

	run.syscalls = 0;
	run.cs = 0;
	run.killed = false;
	void (*program)(void) = (void (*)(void))(USER_CODE + (uint32_t)(entry - user_programs_start));
	uint32_t status = run_user(program, USER_STACK_TOP);

	map_page(USER_CODE, 0, 0);
	map_page(USER_STACK_TOP - PAGE_SIZE, 0, 0);
	unmap_table(USER_CODE);
	page_free(code);
	page_free(stack);
	if (run.killed)
		kprintf("user: the program made %u system call%s before it was killed\n",
			run.syscalls, run.syscalls == 1 ? "" : "s");
	else
		kprintf("user: program exited with status %d after %u system call%s from cs %#x "
			"(privilege level %u)\n",
			(int)status, run.syscalls, run.syscalls == 1 ? "" : "s", run.cs, run.cs & 3);
}
