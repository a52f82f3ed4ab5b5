"""Text models: the AWD-LSTM encoder, its language model (tied decoder) and its classifier (masked concat pooling).

Importing this package registers ``awd_lstm``, ``awd_lstm_lm`` and ``awd_lstm_classifier`` in
:mod:`lamina.nn.registry`.
"""

from lamina.text.models.awdlstm import (
    AWD_LSTM,
    LSTMState,
    RNNDropout,
    WeightDropLSTM,
    embedding_dropout,
    sequence_dropout,
)
from lamina.text.models.core import (
    AWD_LSTM_CLASSIFIER_CONFIG,
    AWD_LSTM_LM_CONFIG,
    LanguageModel,
    LinearDecoder,
    PoolingClassifier,
    SequenceClassifier,
    awd_lstm_classifier_split,
    awd_lstm_lm_split,
    get_language_model,
    get_text_classifier,
    masked_concat_pool,
)

__all__ = [
    "AWD_LSTM",
    "AWD_LSTM_CLASSIFIER_CONFIG",
    "AWD_LSTM_LM_CONFIG",
    "LSTMState",
    "LanguageModel",
    "LinearDecoder",
    "PoolingClassifier",
    "RNNDropout",
    "SequenceClassifier",
    "WeightDropLSTM",
    "awd_lstm_classifier_split",
    "awd_lstm_lm_split",
    "embedding_dropout",
    "get_language_model",
    "get_text_classifier",
    "masked_concat_pool",
    "sequence_dropout",
]
