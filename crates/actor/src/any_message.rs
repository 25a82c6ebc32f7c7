//! [`AnyMessage`]: a type-erased message that stores small values inline.
//!
//! Most messages are a few words (ids, counters, a `String`, a `Pid`), and a
//! heap allocation per message would cost more than the rest of a send. A
//! value of at most three words and word alignment is stored in place; larger
//! ones are boxed. Either way the message is reachable as `&dyn Message`.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit, align_of, size_of};
use std::ops::{Deref, DerefMut};

use crate::message::Message;

const INLINE_WORDS: usize = 3;
type Storage = MaybeUninit<[usize; INLINE_WORDS]>;

const fn fits_inline<T>() -> bool {
    size_of::<T>() <= size_of::<Storage>() && align_of::<T>() <= align_of::<Storage>()
}

/// A message of any type, owned and type-erased.
///
/// `AnyMessage` is `Send` (every [`Message`] is) but not `Sync`: a message
/// only has to be `Send`, so a shared `&AnyMessage` on two threads could hand
/// out `&T` for a `T` that is not `Sync`. This does not compile:
///
/// ```compile_fail
/// fn shared_across_threads<T: Sync>() {}
/// shared_across_threads::<protoactor_actor::AnyMessage>();
/// ```
///
/// and neither does sharing one that holds a `Cell`:
///
/// ```compile_fail
/// use std::cell::Cell;
/// use protoactor_actor::AnyMessage;
/// let msg = AnyMessage::new(Cell::new(1u32));
/// std::thread::scope(|s| {
///     s.spawn(|| msg.downcast_ref::<Cell<u32>>().map(|c| c.set(2)));
///     s.spawn(|| msg.downcast_ref::<Cell<u32>>().map(|c| c.set(3)));
/// });
/// ```
///
/// while sending one to another thread does:
///
/// ```
/// use std::cell::Cell;
/// use protoactor_actor::AnyMessage;
/// let msg = AnyMessage::new(Cell::new(1u32));
/// let back = std::thread::spawn(move || msg.downcast::<Cell<u32>>().ok().map(Cell::into_inner));
/// assert_eq!(back.join().ok().flatten(), Some(1));
/// ```
pub struct AnyMessage {
    data: Storage,
    vtable: &'static VTable,
    /// `Cell` is `Send + !Sync`: it takes `Sync` away and leaves `Send`.
    _not_sync: PhantomData<Cell<()>>,
}

/// How to reach and drop the value: in `data` itself (inline) or through the
/// box stored in it. One static table per message type.
struct VTable {
    get: unsafe fn(*const Storage) -> *const dyn Message,
    get_mut: unsafe fn(*mut Storage) -> *mut dyn Message,
    drop_value: unsafe fn(*mut Storage),
}

// SAFETY: the stored value is `T: Message`, which requires `Send`; the raw
// storage hides `T` from the compiler, so this is stated, not derived.
unsafe impl Send for AnyMessage {}

/// # Safety
/// `data` must hold an initialised `T` written in place by [`AnyMessage::new`].
unsafe fn get_inline<T: Message>(data: *const Storage) -> *const dyn Message {
    data as *const T as *const dyn Message
}
/// # Safety
/// As [`get_inline`]; the caller holds `data` exclusively.
unsafe fn get_mut_inline<T: Message>(data: *mut Storage) -> *mut dyn Message {
    data as *mut T as *mut dyn Message
}
/// # Safety
/// As [`get_inline`]; the value must not be used or dropped again afterwards.
unsafe fn drop_inline<T: Message>(data: *mut Storage) {
    // SAFETY: `data` holds an initialised `T` written by `AnyMessage::new`.
    unsafe { std::ptr::drop_in_place(data as *mut T) }
}
/// # Safety
/// The first word of `data` must hold the live pointer `Box::<T>::into_raw`
/// returned in [`AnyMessage::new`].
unsafe fn get_boxed<T: Message>(data: *const Storage) -> *const dyn Message {
    // SAFETY: the first word holds the pointer produced by `Box::into_raw`.
    unsafe { *(data as *const *const T) as *const dyn Message }
}
/// # Safety
/// As [`get_boxed`]; the caller holds `data` exclusively.
unsafe fn get_mut_boxed<T: Message>(data: *mut Storage) -> *mut dyn Message {
    // SAFETY: as in `get_boxed`.
    unsafe { *(data as *const *mut T) as *mut dyn Message }
}
/// # Safety
/// As [`get_boxed`]; the box must not be used or freed again afterwards.
unsafe fn drop_boxed<T: Message>(data: *mut Storage) {
    // SAFETY: as in `get_boxed`; the box is dropped exactly once.
    unsafe { drop(Box::from_raw(*(data as *const *mut T))) }
}

impl AnyMessage {
    /// Erases `value`. If it is already an `AnyMessage` it is returned as is.
    #[inline]
    pub fn new<T: Message>(value: T) -> Self {
        let mut slot = Some(value);
        if TypeId::of::<T>() == TypeId::of::<AnyMessage>()
            && let Some(inner) = (&mut slot as &mut dyn Any).downcast_mut::<Option<AnyMessage>>().and_then(Option::take)
        {
            return inner;
        }
        let Some(value) = slot else { unreachable!("the slot is only emptied when returning above") };
        let mut data = Storage::uninit();
        if fits_inline::<T>() {
            // SAFETY: `T` fits in `data` by size and alignment (checked above).
            unsafe { (data.as_mut_ptr() as *mut T).write(value) };
            let vtable =
                const { &VTable { get: get_inline::<T>, get_mut: get_mut_inline::<T>, drop_value: drop_inline::<T> } };
            AnyMessage { data, vtable, _not_sync: PhantomData }
        } else {
            let ptr = Box::into_raw(Box::new(value));
            // SAFETY: a pointer fits in the first word.
            unsafe { (data.as_mut_ptr() as *mut *mut T).write(ptr) };
            let vtable =
                const { &VTable { get: get_boxed::<T>, get_mut: get_mut_boxed::<T>, drop_value: drop_boxed::<T> } };
            AnyMessage { data, vtable, _not_sync: PhantomData }
        }
    }

    /// The message as a trait object.
    #[inline]
    pub fn as_message(&self) -> &dyn Message {
        // SAFETY: `get` matches how `data` was filled in `new`.
        unsafe { &*(self.vtable.get)(&self.data) }
    }

    /// The message as a mutable trait object.
    #[inline]
    pub fn as_message_mut(&mut self) -> &mut dyn Message {
        // SAFETY: as in `as_message`.
        unsafe { &mut *(self.vtable.get_mut)(&mut self.data) }
    }

    /// The message as `&dyn Any`, for downcasting.
    #[inline]
    pub fn as_any(&self) -> &dyn Any {
        self.as_message()
    }

    /// The Rust type name of the message.
    #[inline]
    pub fn type_name(&self) -> &'static str {
        self.as_message().type_name()
    }

    /// The `TypeId` of the message.
    #[inline]
    pub fn message_type_id(&self) -> TypeId {
        self.as_any().type_id()
    }

    /// True if the message is a `T`.
    #[inline]
    pub fn is<T: Any>(&self) -> bool {
        self.message_type_id() == TypeId::of::<T>()
    }

    /// The message, if it is a `T`.
    #[inline]
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.as_any().downcast_ref::<T>()
    }

    /// The message, mutably, if it is a `T`.
    pub fn downcast_mut<T: Any>(&mut self) -> Option<&mut T> {
        let any: &mut dyn Any = self.as_message_mut();
        any.downcast_mut::<T>()
    }

    /// Takes the message out if it is a `T`, or gives it back.
    #[inline]
    pub fn downcast<T: Any>(self) -> Result<T, AnyMessage> {
        if !self.is::<T>() {
            return Err(self);
        }
        let mut this = ManuallyDrop::new(self);
        // SAFETY: the value is a `T` (checked above) stored as `new::<T>` stores
        // it; `this` is never dropped, so the value is moved out exactly once.
        unsafe {
            let ptr = (this.vtable.get_mut)(&mut this.data) as *mut T;
            if fits_inline::<T>() { Ok(ptr.read()) } else { Ok(*Box::from_raw(ptr)) }
        }
    }
}

impl Drop for AnyMessage {
    fn drop(&mut self) {
        // SAFETY: `drop_value` matches how `data` was filled; runs once.
        unsafe { (self.vtable.drop_value)(&mut self.data) }
    }
}

impl Deref for AnyMessage {
    type Target = dyn Message;
    fn deref(&self) -> &dyn Message {
        self.as_message()
    }
}

impl DerefMut for AnyMessage {
    fn deref_mut(&mut self) -> &mut dyn Message {
        self.as_message_mut()
    }
}

impl fmt::Debug for AnyMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnyMessage(<{}>)", self.type_name())
    }
}

impl<T: Message> From<Box<T>> for AnyMessage {
    fn from(b: Box<T>) -> Self {
        AnyMessage::new(*b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Too big to be stored inline: exercises the boxed path.
    struct Counted(Arc<AtomicUsize>, #[allow(dead_code)] [u8; 64]);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    struct SmallCounted(Arc<AtomicUsize>);
    impl Drop for SmallCounted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn inline_and_boxed_round_trip() {
        let m = AnyMessage::new(42u64);
        assert!(m.is::<u64>());
        assert_eq!(m.downcast_ref::<u64>(), Some(&42));
        assert_eq!(m.downcast::<u64>().ok(), Some(42));

        let s = AnyMessage::new(String::from("inline string"));
        assert_eq!(s.type_name(), "alloc::string::String");
        let s = s.downcast::<u32>().expect_err("not a u32");
        assert_eq!(s.downcast::<String>().ok().as_deref(), Some("inline string"));

        let big = AnyMessage::new([7u8; 100]);
        assert_eq!(big.downcast_ref::<[u8; 100]>().map(|a| a[99]), Some(7));
        assert_eq!(big.downcast::<[u8; 100]>().ok().map(|a| a[0]), Some(7));
    }

    #[test]
    fn drops_exactly_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        drop(AnyMessage::new(Counted(drops.clone(), [0; 64])));
        drop(AnyMessage::new(SmallCounted(drops.clone())));
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        let taken = AnyMessage::new(Counted(drops.clone(), [0; 64])).downcast::<Counted>().ok();
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        drop(taken);
        let taken = AnyMessage::new(SmallCounted(drops.clone())).downcast::<SmallCounted>().ok();
        drop(taken);
        assert_eq!(drops.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn nested_any_message_is_not_double_wrapped() {
        let inner = AnyMessage::new(5u8);
        let outer = AnyMessage::new(inner);
        assert!(outer.is::<u8>());
    }

    #[test]
    fn moves_keep_inline_values_valid() {
        let v: Vec<AnyMessage> = (0..100).map(|i| AnyMessage::new(format!("m{i}"))).collect();
        let moved: Vec<AnyMessage> = v.into_iter().rev().collect();
        assert_eq!(moved[0].downcast_ref::<String>().map(String::as_str), Some("m99"));
    }
}
