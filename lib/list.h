/* Intrusive doubly linked list of structs with `next` and `prev` fields. */
#ifndef HV_LIST_H
#define HV_LIST_H

#define HV_LIST_LINK(head, x)               \
	do {                                \
		(x)->prev = NULL;           \
		(x)->next = (head);         \
		if ((head) != NULL)         \
			(head)->prev = (x); \
		(head) = (x);               \
	} while (0)

#define HV_LIST_UNLINK(head, x)                      \
	do {                                         \
		if ((x)->prev != NULL)               \
			(x)->prev->next = (x)->next; \
		else                                 \
			(head) = (x)->next;          \
		if ((x)->next != NULL)               \
			(x)->next->prev = (x)->prev; \
	} while (0)

#endif
