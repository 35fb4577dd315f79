//! Keras 3 GRU and LSTM as TF 2.21's converter writes them: a WHILE loop over the time steps.

use super::recurrent::Recurrent;
use super::{Lowering, Value};
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;

impl Lowering<'_> {
    /// The WHILE loop of a Keras 3 recurrent layer.
    pub(super) fn recurrent_loop(
        &mut self,
        call: &LayerCall,
        _r: &Recurrent,
    ) -> Result<Value, KerasErrorKind> {
        Err(KerasErrorKind::unsupported(
            &call.name,
            &call.class,
            "Keras 3 recurrent layers (TF writes a WHILE loop) are not lowered yet",
        ))
    }
}
