/*
 * bench_block: sequential virtio-block throughput through the whole path, for scripts/bench.
 *
 * Run by the real launcher with --block=FILE: the guest finds the block device on the device
 * page, reads the whole disk front to back in BENCH_CHUNK-byte requests, then writes it back the
 * same way.  It prints a line on the early console before and after each pass; scripts/bench
 * times the lines as the launcher prints them, so the figure covers guest driver -> NOTIFY ->
 * launcher's block device -> file -> used ring, per request.
 *
 * Waiting for a request polls the used ring: the launcher fills it through the shared memory,
 * so the figure does not depend on how interrupts are delivered (the interrupt figure does that).
 * Like bench_ops.c beside it, it needs nothing but the guest runtime (launcher/guests/rt).
 */
#include "lguest.h"
#include "virtio_blk.h"

#define BENCH_CHUNK (64 * 1024)
#define BENCH_SECTORS (BENCH_CHUNK / SECTOR_SIZE)

static uint8_t buffer[BENCH_CHUNK] __attribute__((aligned(4096)));
static uint32_t device_table[1024] __attribute__((aligned(4096)));
static struct vblk blk;

/* The device page and the rings sit just above RAM: map them at PAGE_OFFSET + phys through a
 * page table of our own (they all fit in one 4 MB slot when RAM is a multiple of 4 MB), telling
 * the Host of each entry as Linux does (SET_PMD, SET_PTE). */
static void *map_device_pages(uint32_t phys, uint32_t pages)
{
	static bool installed;
	uint32_t va = PAGE_OFFSET + phys;
	uint32_t *pgdir = __va(lguest_data.pgdir);

	if (!installed) {
		pgdir[va >> 22] = __pa(device_table) | PTE_PRESENT | PTE_RW | PTE_USER;
		hcall(LHCALL_SET_PMD, lguest_data.pgdir, va >> 22, 0);
		installed = true;
	}
	for (uint32_t i = 0; i < pages; i++) {
		uint32_t at = va + i * PAGE_SIZE;
		uint32_t pte = (phys + i * PAGE_SIZE) | PTE_PRESENT | PTE_RW | PTE_ACCESSED | PTE_DIRTY;

		device_table[(at >> PAGE_SHIFT) & 1023] = pte;
		hcall(LHCALL_SET_PTE, lguest_data.pgdir, at, pte);
	}
	return (void *)va;
}

static void pass_over_disk(bool write)
{
	uint32_t sectors = (uint32_t)blk.capacity;

	for (uint32_t at = 0; at < sectors; at += BENCH_SECTORS) {
		uint32_t count = sectors - at < BENCH_SECTORS ? sectors - at : BENCH_SECTORS;
		int status = vblk_rw(&blk, write, at, buffer, count, 0);

		if (status != VIRTIO_BLK_S_OK)
			panic("bench_block: %s of sectors %u+%u: status %d", write ? "write" : "read",
			      at, count, status);
	}
}

int main(void)
{
	struct virtio_device *dev;

	virtio_scan(guest_mem_size(), map_device_pages);
	dev = virtio_find(VIRTIO_ID_BLOCK, 0);
	if (!dev || !vblk_init(&blk, dev))
		panic("bench_block: no block device: give the launcher --block=FILE");
	printk("bench_block: read start %u bytes\n", (uint32_t)blk.capacity * SECTOR_SIZE);
	pass_over_disk(false);
	printk("bench_block: read done\n");
	printk("bench_block: write start\n");
	pass_over_disk(true);
	printk("bench_block: write done\n");
	return 0;
}
