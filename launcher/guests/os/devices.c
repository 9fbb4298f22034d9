/*
 * devices.c: the virtio devices the launcher offered, wired to the rest of the guest.
 *
 * The device page sits at guest-physical `mem`, just above RAM (spec 9); mm.c maps it and the
 * rings at PAGE_OFFSET + phys.  Each queue that wants interrupts gets the counting irq handler
 * of traps.c; the work itself happens in the event loop, which sleeps in HALT until an irq
 * (typed input, a received frame, a finished block request, a timer tick) wakes it.
 */
#include "os.h"
#include "virtio_console.h"

static struct vblk blk_device;
static struct vnet net_device;
struct vblk *blk;
struct vnet *net;

static const char *device_name(uint8_t type)
{
	switch (type) {
	case VIRTIO_ID_NET:
		return "net";
	case VIRTIO_ID_BLOCK:
		return "block";
	case VIRTIO_ID_CONSOLE:
		return "console";
	default:
		return "unknown";
	}
}

void devices_init(void)
{
	struct virtio_device *dev;
	int found = virtio_scan(guest_mem_size(), map_device_pages);

	boot_msg("virtio: %d device%s on the device page at %#x\n", found, found == 1 ? "" : "s",
		 guest_mem_size());
	dev = virtio_find(VIRTIO_ID_CONSOLE, 0);
	if (dev && vcon_init(dev))
		enable_device_irq(vcon_input_queue()->irq);
	else
		boot_msg("virtio: no usable console: output stays on the early console\n");

	dev = virtio_find(VIRTIO_ID_BLOCK, 0);
	if (dev && vblk_init(&blk_device, dev)) {
		blk = &blk_device;
		enable_device_irq(blk->vq.irq);
		boot_msg("virtio: block device, %u sectors (%u KB), irq %u\n",
			 (uint32_t)blk->capacity, (uint32_t)(blk->capacity / 2), blk->vq.irq);
	}
	dev = virtio_find(VIRTIO_ID_NET, 0);
	if (dev && vnet_init(&net_device, dev)) {
		net = &net_device;
		enable_device_irq(net->rx.irq);
		const uint8_t *m = net->mac;
		boot_msg("virtio: network device %02x:%02x:%02x:%02x:%02x:%02x, irq %u\n", m[0], m[1],
			 m[2], m[3], m[4], m[5], net->rx.irq);
	}
}

void devices_list(void)
{
	struct virtio_device *list;
	int n = virtio_devices(&list);

	for (int i = 0; i < n; i++) {
		uint8_t status = virtio_status(&list[i]);
		kprintf("%d: %-8s type %u, status %#04x%s%s%s%s, %u config bytes\n", i,
			device_name(list[i].type), list[i].type, status,
			status & VIRTIO_CONFIG_S_ACKNOWLEDGE ? " ack" : "",
			status & VIRTIO_CONFIG_S_DRIVER ? " driver" : "",
			status & VIRTIO_CONFIG_S_DRIVER_OK ? " ok" : "",
			status & VIRTIO_CONFIG_S_FAILED ? " FAILED" : "", list[i].desc[1]);
	}
	if (vcon_ready())
		kprintf("console: input irq %u (%u completions), output polled (%u kicks)\n",
			vcon_input_queue()->irq, vcon_input_queue()->completions,
			vcon_output_queue()->kicks);
	if (blk)
		kprintf("block: irq %u, %u reads, %u writes, %u errors\n", blk->vq.irq, blk->reads,
			blk->writes, blk->errors);
	if (net)
		kprintf("net: irq %u, %u frames sent, %u received\n", net->rx.irq, net->sent,
			net->received);
}

void wait_event(bool (*done)(void *), void *arg)
{
	irq_disable();
	if (done(arg)) {
		irq_enable();
		return;
	}
	/* HALT acts as sti;hlt: an irq that arrived since the check above still wakes us. */
	stats.halts++;
	lguest_halt();
}

bool events_pending(void)
{
	return vcon_input_pending() || (net && vnet_rx_pending(net));
}

void net_poll(void)
{
	static uint8_t frame[VNET_FRAME_MAX];
	uint32_t len;

	while (net && (len = vnet_recv(net, frame, sizeof(frame))) > 0) {
		kprintf("net: received %u bytes", len);
		if (len >= ETH_HEADER_BYTES) {
			const uint8_t *s = frame + 6;
			kprintf(" from %02x:%02x:%02x:%02x:%02x:%02x, type %#06x: ", s[0], s[1], s[2],
				s[3], s[4], s[5], (uint32_t)(frame[12] << 8 | frame[13]));
			print_quoted(frame + ETH_HEADER_BYTES, len - ETH_HEADER_BYTES);
		}
		kprintf("\n");
	}
}
