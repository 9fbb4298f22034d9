/*
 * mm.c: guest RAM and the kernel's page tables.
 *
 * At entry the guest runs on the launcher's tables: RAM identity-mapped, and (entry.S) the same
 * PTE pages aliased at PAGE_OFFSET.  Like Linux we then build tables of our own and move to them
 * with NEW_PGTABLE: RAM at PAGE_OFFSET + phys and nothing at all below PAGE_OFFSET, so a null
 * pointer faults.  From then on every change to a live table is followed by the hypercall that
 * tells the Host (spec 6): SET_PTE for an entry, SET_PMD for a directory entry.
 *
 * Physical pages are tracked in a bitmap.  Free at boot: RAM from the end of the kernel up to the
 * launcher's page tables; the first megabyte (zero page, command line) and any initrd (at the
 * very top, above the launcher's tables) stay reserved, and the launcher's tables are freed once
 * we no longer run on them.
 */
#include "os.h"

extern char _text[], _end[];

#define PAGES_MAX (MAX_GUEST_MEM / PAGE_SIZE)
#define PTES_PER_PAGE 1024
#define PDE_INDEX(va) ((uint32_t)(va) >> 22)
#define PTE_INDEX(va) (((uint32_t)(va) >> PAGE_SHIFT) & (PTES_PER_PAGE - 1))
#define KERNEL_PTE (PTE_PRESENT | PTE_RW)
#define RESERVED_LOW (1u << 20) /* zero page, command line: the "boot area" */

static uint32_t used_map[PAGES_MAX / 32];
static uint32_t ram_pages, free_pages;
static uint32_t *pgdir; /* ours, once mm_switch_tables() ran; else 0 */
static struct mem_stats info;

static bool page_used(uint32_t pfn)
{
	return used_map[pfn / 32] & (1u << (pfn % 32));
}

static void mark(uint32_t pfn, bool used)
{
	if (pfn >= ram_pages || page_used(pfn) == used)
		return;
	used_map[pfn / 32] ^= 1u << (pfn % 32);
	if (used)
		free_pages--;
	else
		free_pages++;
}

static void mark_range(uint32_t start, uint32_t end, bool used)
{
	for (uint32_t pfn = start / PAGE_SIZE; pfn < (end + PAGE_SIZE - 1) / PAGE_SIZE; pfn++)
		mark(pfn, used);
}

/* Where the launcher put its tables (spec 8): the directory, and one PTE page per 4 MB below. */
static uint32_t launcher_tables_start(void)
{
	uint32_t ptes = (info.ram_bytes / PAGE_SIZE + PTES_PER_PAGE - 1) / PTES_PER_PAGE;
	return lguest_data.pgdir - ptes * PAGE_SIZE;
}

void mm_init(void)
{
	info.ram_bytes = guest_mem_size();
	if (info.ram_bytes > MAX_GUEST_MEM)
		panic("%u MB of RAM: this guest handles at most %u MB", info.ram_bytes >> 20,
		      MAX_GUEST_MEM >> 20);
	ram_pages = info.ram_bytes / PAGE_SIZE;
	info.kernel_start = __pa(_text);
	info.kernel_end = __pa(_end);
	const uint8_t *zero_page = __va(boot_params_phys);
	uint32_t initrd_size = *(const uint32_t *)(zero_page + BOOT_RAMDISK_SIZE);
	if (initrd_size) {
		info.initrd_start = *(const uint32_t *)(zero_page + BOOT_RAMDISK_IMAGE);
		info.initrd_end = info.initrd_start + initrd_size;
	}

	/* Everything starts used; free what nobody else owns. */
	memset(used_map, 0xFF, sizeof(used_map));
	free_pages = 0;
	mark_range(info.kernel_end > RESERVED_LOW ? info.kernel_end : RESERVED_LOW,
		   launcher_tables_start(), false);
	info.total_pages = ram_pages;
}

void *page_alloc(void)
{
	for (uint32_t word = 0; word < (ram_pages + 31) / 32; word++) {
		if (used_map[word] == 0xFFFFFFFF)
			continue;
		uint32_t pfn = word * 32 + (uint32_t)__builtin_ctz(~used_map[word]);
		if (pfn >= ram_pages)
			break;
		mark(pfn, true);
		void *page = __va(pfn * PAGE_SIZE);
		memset(page, 0, PAGE_SIZE);
		return page;
	}
	return 0;
}

void page_free(void *page)
{
	mark(__pa(page) / PAGE_SIZE, false);
}

/* Tell the Host that the page-directory entry covering va changed. */
static void set_pmd(uint32_t va)
{
	hcall(LHCALL_SET_PMD, __pa(pgdir), PDE_INDEX(va), 0);
	stats.set_pmds++;
}

/* The PTE slot for va, allocating its PTE page if `create`; 0 if there is none. */
static uint32_t *pte_slot(uint32_t va, bool create, uint32_t pde_flags)
{
	uint32_t *pde = &pgdir[PDE_INDEX(va)];

	if (!(*pde & PTE_PRESENT)) {
		if (!create)
			return 0;
		uint32_t *table = page_alloc();
		if (!table)
			panic("out of memory for a page table (va %#x)", va);
		info.table_pages++;
		*pde = __pa(table) | pde_flags;
		set_pmd(va);
	} else if ((*pde & pde_flags) != pde_flags) {
		/* A user page in a kernel-only 4 MB: widen the directory entry. */
		*pde |= pde_flags;
		set_pmd(va);
	}
	return (uint32_t *)__va(*pde & ~(PAGE_SIZE - 1)) + PTE_INDEX(va);
}

void map_page(uint32_t va, uint32_t phys, uint32_t flags)
{
	uint32_t *pte = pte_slot(va, flags != 0, PTE_PRESENT | PTE_RW | (flags & PTE_USER));

	if (!pte)
		return;
	*pte = flags ? (phys & ~(PAGE_SIZE - 1)) | flags : 0;
	hcall(LHCALL_SET_PTE, __pa(pgdir), va, *pte);
	stats.set_ptes++;
}

void unmap_table(uint32_t va)
{
	uint32_t *pde = &pgdir[PDE_INDEX(va)];

	if (!(*pde & PTE_PRESENT))
		return;
	page_free(__va(*pde & ~(PAGE_SIZE - 1)));
	info.table_pages--;
	*pde = 0;
	set_pmd(va);
}

uint32_t virt_to_phys_walk(uint32_t va)
{
	uint32_t *pte = pte_slot(va, false, 0);

	if (!pte || !(*pte & PTE_PRESENT))
		return 0;
	return (*pte & ~(PAGE_SIZE - 1)) | (va & (PAGE_SIZE - 1));
}

void mm_switch_tables(void)
{
	uint32_t launcher_start = launcher_tables_start(), launcher_end = lguest_data.pgdir + PAGE_SIZE;
	uint32_t *dir = page_alloc();

	if (!dir)
		panic("no memory for a page directory");
	info.table_pages = 1;
	/* Fill the tables before they are live: no hypercall needed until NEW_PGTABLE. */
	for (uint32_t phys = 0; phys < info.ram_bytes; phys += PAGE_SIZE) {
		uint32_t va = PAGE_OFFSET + phys;
		uint32_t *pde = &dir[PDE_INDEX(va)];
		if (!(*pde & PTE_PRESENT)) {
			uint32_t *table = page_alloc();
			if (!table)
				panic("no memory for the kernel's page tables");
			info.table_pages++;
			*pde = __pa(table) | KERNEL_PTE;
		}
		((uint32_t *)__va(*pde & ~(PAGE_SIZE - 1)))[PTE_INDEX(va)] = phys | KERNEL_PTE;
	}
	hcall(LHCALL_NEW_PGTABLE, __pa(dir), 0, 0);
	/*
	 * The Host may give our new directory the shadow slot of the launcher's, and like 2.6.24 it
	 * then forgets only the user half (spec 6: kernel mappings are assumed the same in every
	 * table).  Ours are not: the launcher mapped the kernel with the user bit, we do not.  So
	 * make it forget everything, or a user program could read the kernel.
	 */
	hcall(LHCALL_FLUSH_TLB, 1, 0, 0);
	pgdir = dir;
	info.pgdir = __pa(dir);

	/* Nobody walks the launcher's tables any more. */
	mark_range(launcher_start, launcher_end, false);
	info.launcher_tables_freed = (launcher_end - launcher_start) / PAGE_SIZE;
}

void *map_device_pages(uint32_t phys, uint32_t pages)
{
	if (phys < info.ram_bytes || pages > DEVICE_PAGES_MAX ||
	    phys + pages * PAGE_SIZE > SWITCHER_ADDR - PAGE_OFFSET)
		return 0;
	for (uint32_t i = 0; i < pages; i++)
		map_page(PAGE_OFFSET + phys + i * PAGE_SIZE, phys + i * PAGE_SIZE, KERNEL_PTE);
	if (!info.device_start || phys < info.device_start)
		info.device_start = phys;
	if (phys + pages * PAGE_SIZE > info.device_end)
		info.device_end = phys + pages * PAGE_SIZE;
	return __va(phys);
}

void mm_stats(struct mem_stats *stats)
{
	*stats = info;
	stats->free_pages = free_pages;
}
