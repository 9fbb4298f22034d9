/* async_notify_stop (spec 3.2): the async ring runs before each synchronous hypercall and stops
 * early once a NOTIFY is pending, leaving the rest (and the synchronous call) for the next
 * read.  Two queued NOTIFYs and a direct one must reach the launcher as three lines in order;
 * without the early stop the second would overwrite the first. */
#define GUEST "async_notify_stop"
#include "check.h"

int main(void)
{
	async_hcall(LHCALL_NOTIFY, __pa("ring one\n"), 0, 0);
	async_hcall(LHCALL_NOTIFY, __pa("ring two\n"), 0, 0);
	CHECK(lguest_data.hcall_status[0] == 0 && lguest_data.hcall_status[1] == 0,
	      "queued slots are not pending (%#x %#x)", lguest_data.hcall_status[0],
	      lguest_data.hcall_status[1]);
	lguest_notify(__pa("direct three\n"));
	for (unsigned int i = 0; i < LHCALL_RING_SIZE; i++)
		CHECK(lguest_data.hcall_status[i] == HCALL_STATUS_DONE, "slot %u status %#x", i,
		      lguest_data.hcall_status[i]);
	pass();
	return 0;
}
