/*
 * Entry point, hypercall page and Xen ELF notes of the hello PV guest.
 *
 * Xen's ELF loader (xen/common/libelf/libelf-dominfo.c) boots an image as a PV
 * guest only with XEN_VERSION "xen-3.0" and LOADER "generic"; PV-GRUB's kexec
 * additionally needs an ELF64 x86-64 image (guest type xen-3.0-x86_64).
 * Note numbers and layout: xen/include/public/elfnote.h.
 */

#define VIRT_BASE 0xffffffff80000000

/* One ELF note owned by "Xen": namesz, descsz, type, name, desc (each 4-byte padded). */
.macro xen_note type:req, desc:vararg
	.balign 4
	.long 2f - 1f
	.long 4f - 3f
	.long \type
1:	.asciz "Xen"
2:	.balign 4
3:	\desc
4:	.balign 4
.endm

.macro xen_note_string type:req, text:req
	xen_note \type, .asciz "\text"
.endm

.macro xen_note_number type:req, value:req
	xen_note \type, .quad \value
.endm

	.section .note.Xen, "a", @note
	xen_note_string 6, "MirageUnikernelAmi-hello"	/* GUEST_OS */
	xen_note_string 7, "1"				/* GUEST_VERSION */
	xen_note_string 5, "xen-3.0"			/* XEN_VERSION */
	xen_note_string 8, "generic"			/* LOADER */
	xen_note_number 3, VIRT_BASE			/* VIRT_BASE */
	/* Program headers carry physical addresses counted from 0 (see hello.lds). */
	xen_note_number 4, 0				/* PADDR_OFFSET */
	xen_note_number 1, _start			/* ENTRY */
	xen_note_number 2, hypercall_page		/* HYPERCALL_PAGE */
	/* The x86_64 PV feature string Linux declares; libelf knows both names. */
	xen_note_string 10, "!writable_page_tables|pae_pgdir_above_4gb" /* FEATURES */

	.section .text.head, "ax"
	.globl _start
_start:
	/* Xen enters with %rsi = virtual address of start_info and no stack of ours. */
	cld
	leaq stack_top(%rip), %rsp
	movq %rsi, %rdi
	call hello_main
1:	jmp 1b

/*
 * Xen fills this page with one 32-byte stub per hypercall ("mov $nr, %eax;
 * syscall; ret"). Two-argument hypercalls take their arguments in %rdi and
 * %rsi, exactly as the C calling convention passes them, so a tail jump is a
 * complete wrapper.
 */
	.balign 4096
	.globl hypercall_page
hypercall_page:
	.skip 4096

	.globl sched_op
sched_op:
	jmp hypercall_page + 29 * 32		/* __HYPERVISOR_sched_op */

	.globl event_channel_op
event_channel_op:
	jmp hypercall_page + 32 * 32		/* __HYPERVISOR_event_channel_op */

	.section .bss
	.balign 16
	.skip 16384
stack_top:
